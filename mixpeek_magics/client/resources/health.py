"""``GET /v1/health``."""

from __future__ import annotations

from mixpeek_magics.client.models.health import Health
from mixpeek_magics.client.resources._base import Resource, model


class HealthResource(Resource):
    def check(self, *, deep: bool | None = None, timeout: float | None = None) -> Health:
        """Service health; needs no API key."""
        return self._request(
            self._spec(
                "GET",
                "/v1/health",
                params={"deep": deep},
                parse=model(Health),
                timeout=timeout,
                authenticated=False,
            )
        )
