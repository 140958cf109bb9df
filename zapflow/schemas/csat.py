"""The company's CSAT settings (``companies.settings.csat``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from zapflow.whatsapp.interactive import BODY_MAX, ROW_TITLE_MAX

Label = Annotated[str, Field(min_length=1, max_length=ROW_TITLE_MAX)]


class CsatTemplate(BaseModel):
    """An approved template without parameters, sent when the 24-hour window has closed."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=512, examples=["csat_pedido"])
    language: str = Field("en_US", min_length=2, max_length=16, examples=["pt_BR"])


class CsatSettings(BaseModel):
    """A rating request (1 to 5) sent when a conversation closes: interactive choices on the
    Cloud API, the same choices as numbered text on Evolution, inside WhatsApp's 24-hour window;
    outside it the template, or nothing when there is none."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "enabled": True,
                    "question": "Como você avalia nosso atendimento?",
                    "template": {"name": "csat_pedido", "language": "pt_BR"},
                }
            ]
        },
    )

    enabled: bool = False
    question: str = Field(
        "How would you rate our service?", min_length=1, max_length=BODY_MAX - 100
    )
    # the five choices' titles, from 1 (worst) to 5; shown on buttons and in the numbered text
    labels: list[Label] = Field(
        ["Very poor", "Poor", "OK", "Good", "Excellent"], min_length=5, max_length=5
    )
    template: CsatTemplate | None = None
