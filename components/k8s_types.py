"""Typed builders for custom resources: snake_case Python fields, camelCase Kubernetes output.

pulumi-kubernetes passes a CustomResource `spec` through untouched, so a snake_case key would reach
the API server as-is and be pruned or rejected. These models make that mistake impossible.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    def to_k8s(self) -> dict[str, Any]:
        """The object as the API server expects it: camelCase keys, unset fields omitted."""
        return self.model_dump(by_alias=True, exclude_none=True)
