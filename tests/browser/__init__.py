"""Real-browser tests: JupyterLab driven in headless Chromium by Playwright."""
