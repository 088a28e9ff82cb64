"""The API tables, one module per API, indexed by API key."""

from ..schema import Api
from . import api_versions, fetch, list_offsets, metadata, produce

APIS: dict[int, Api] = {
    m.API.key: m.API for m in (produce, fetch, list_offsets, metadata, api_versions)
}
