from __future__ import annotations

from typing import Any

from mixpeek_magics.client.models._base import MixpeekModel


class RateLimits(MixpeekModel):
    metadata: int | None = None
    data: int | None = None
    search: int | None = None
    upload: int | None = None
    compute: int | None = None


class Organization(MixpeekModel):
    """``OrganizationModelResponse``."""

    organization_id: str
    organization_name: str | None = None
    logo_url: str | None = None
    account_type: str | None = None  # free / pro / team / enterprise / future tiers
    credit_count: int | None = None
    metadata: dict[str, Any] | None = None
    billing_email: str | None = None
    rate_limits: RateLimits | None = None
    created_at: str | None = None
    updated_at: str | None = None
    users: list[dict[str, Any]] | None = None
