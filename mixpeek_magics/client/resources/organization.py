"""``GET /v1/organizations``: the organization the API key belongs to."""

from __future__ import annotations

from mixpeek_magics.client.models.organization import Organization
from mixpeek_magics.client.resources._base import Resource, model


class Organizations(Resource):
    def get(self, *, timeout: float | None = None) -> Organization:
        """The caller's organization (also the cheapest way to check an API key)."""
        return self._request(self._spec("GET", "/v1/organizations", parse=model(Organization), timeout=timeout))
