"""Request and response bodies of the pricing API (they define the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from demand.guardrails import BOUND_LABELS

MAX_PRICE = 1e9  # currency units; beyond this a price is an input error, not a product
MAX_ITEMS_PER_QUOTE = 1000  # the default of settings.max_items_per_quote; the schema's hard ceiling
Price = Annotated[float, Field(ge=0.01, le=MAX_PRICE, allow_inf_nan=False, strict=True)]  # strict: no "12.5" or true
Cost = Annotated[float, Field(ge=0.0, le=MAX_PRICE, allow_inf_nan=False, strict=True)]
Identifier = Annotated[str, Field(min_length=1, max_length=128)]
ShopId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Guardrail = Literal["none", "cost_floor", "band_low", "band_high", "competitor_cap"]
assert set(Guardrail.__args__) == set(BOUND_LABELS)  # type: ignore[attr-defined]

_STRICT = ConfigDict(extra="forbid")


class Item(BaseModel):
    """One product on the page: its list (reference) price and unit cost, optionally a competitor's price."""

    model_config = _STRICT
    product_id: Identifier
    list_price: Price = Field(description="The product's reference price r; the model sees price / r.")
    unit_cost: Cost
    competitor_price: Price | None = Field(None, description="A competitor's price; caps ours if the shop's guardrails say so.")
    category: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        None, description="Product category selecting category guardrails.")


class QuoteRequest(BaseModel):
    """Prices for one customer of one shop."""

    model_config = _STRICT
    shop_id: ShopId
    customer_id: Identifier = Field(description="The shop's raw customer id; pseudonymised at once, never stored.")
    items: Annotated[list[Item], Field(min_length=1, max_length=MAX_ITEMS_PER_QUOTE)]


class BatchRequest(BaseModel):
    """Many quote requests priced together (vectorised)."""

    model_config = _STRICT
    requests: Annotated[list[QuoteRequest], Field(min_length=1)]


class Customer(BaseModel):
    """How the customer was served."""

    pseudonym_prefix: str = Field(description="First 12 characters of the shop's pseudonym (never the raw id).")
    known: bool
    path: Literal["known", "cold_start"]


class Quote(BaseModel):
    """The personalised price of one item."""

    product_id: str
    list_price: float
    unit_cost: float
    price: float
    buy_probability: float
    expected_margin: float
    guardrail: Guardrail = Field(description="Which guardrail bound the price ('none' when the optimum was inside).")
    product_known: bool


class QuoteResponse(BaseModel):
    """Prices for one customer."""

    model_version: str
    shop_id: str
    customer: Customer
    quotes: list[Quote]
    personalised: bool = Field(description="True when automated decision-making used this customer's own history to set "
                               "the prices (the disclosure personalised pricing needs); false on the cold-start path, "
                               "where every unknown customer gets the same market-level prices.")


class BatchResponse(BaseModel):
    """One QuoteResponse per request, in order."""

    model_version: str
    results: list[QuoteResponse]


class Problem(BaseModel):
    """One invalid field."""

    field: str
    message: str


class ErrorBody(BaseModel):
    """Every error response: a readable message naming the field, and the individual problems if several."""

    detail: str
    problems: list[Problem] = Field(default_factory=list)


class ModelInfo(BaseModel):
    """The served model's signed manifest."""

    model_version: str
    loaded_at: float
    manifest: dict[str, Any]


class ReloadResponse(BaseModel):
    """Outcome of an admin reload."""

    status: Literal["loaded", "unchanged"]
    model_version: str | None
    detail: str


class Health(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok", "not_ready"]
    model_version: str | None = None
    problems: list[str] = Field(default_factory=list)
