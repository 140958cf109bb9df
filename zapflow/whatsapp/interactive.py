"""Interactive messages (reply buttons, lists, a call-to-action URL button) within Meta's limits,
their Cloud API shape, and the numbered text that stands in for them where buttons do not work.

The limits are the Cloud API's: a message refused for them would fail at send time, after the
agent's 202, so ``Interactive`` refuses them when the message is asked for (a 422 naming the
field). Evolution (Baileys) numbers lost buttons and lists in 2024, so zapflow sends them the
numbered text (``numbered_text``); a number the customer types back is the choice at that place
(``typed_choice``), for a flow's ``ask`` and for the reply stored in the thread alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, model_validator

BODY_MAX = 1024
HEADER_MAX = 60
FOOTER_MAX = 60
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
LIST_BUTTON_MAX = 20
SECTIONS_MAX = 10
ROWS_MAX = 10  # in all sections together
SECTION_TITLE_MAX = 24
ROW_ID_MAX = 200
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
CTA_TEXT_MAX = 20


class ReplyButton(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=BUTTON_ID_MAX)
    title: str = Field(min_length=1, max_length=BUTTON_TITLE_MAX)


def _distinct_buttons(buttons: list[ReplyButton]) -> list[ReplyButton]:
    _unique("buttons", [b.id for b in buttons])
    _unique("buttons", [b.title for b in buttons], what="titles")
    return buttons


# Reply buttons within Meta's limits: an interactive message's and a canned response's alike
ReplyButtons = Annotated[
    list[ReplyButton],
    Field(max_length=BUTTONS_MAX),
    AfterValidator(_distinct_buttons),
]


class ListRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=ROW_ID_MAX)
    title: str = Field(min_length=1, max_length=ROW_TITLE_MAX)
    description: str | None = Field(None, max_length=ROW_DESCRIPTION_MAX)


class ListSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=SECTION_TITLE_MAX)
    rows: list[ListRow] = Field(min_length=1, max_length=ROWS_MAX)


class Interactive(BaseModel):
    """``button``: up to 3 reply buttons; ``list``: a menu (``button``) of up to 10 rows in up
    to 10 sections; ``cta_url``: one button opening ``url``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "button",
                    "body": "Podemos confirmar seu pedido?",
                    "buttons": [{"id": "yes", "title": "Sim"}, {"id": "no", "title": "Não"}],
                },
                {
                    "type": "list",
                    "body": "Escolha um plano",
                    "button": "Planos",
                    "sections": [{"rows": [{"id": "annual", "title": "Anual"}]}],
                },
                {
                    "type": "cta_url",
                    "body": "Veja o catálogo",
                    "display_text": "Abrir",
                    "url": "https://example.com/catalogo",
                },
            ]
        },
    )

    type: Literal["button", "list", "cta_url"]
    body: str = Field(min_length=1, max_length=BODY_MAX)
    header: str | None = Field(None, min_length=1, max_length=HEADER_MAX)
    footer: str | None = Field(None, min_length=1, max_length=FOOTER_MAX)
    buttons: Annotated[ReplyButtons, Field(min_length=1)] | None = None
    button: str | None = Field(None, min_length=1, max_length=LIST_BUTTON_MAX)
    sections: list[ListSection] | None = Field(None, min_length=1, max_length=SECTIONS_MAX)
    display_text: str | None = Field(None, min_length=1, max_length=CTA_TEXT_MAX)
    url: HttpUrl | None = None

    @model_validator(mode="after")
    def _fields_of_its_type(self) -> Interactive:
        needed = {"button": ("buttons",), "list": ("button", "sections"), "cta_url": ("url",)}
        for name in needed[self.type]:
            if getattr(self, name) is None:
                raise ValueError(f"a {self.type} message needs `{name}`")
        if self.type == "cta_url" and self.display_text is None:
            raise ValueError("a cta_url message needs `display_text`")
        rows = [row for section in self.sections or [] for row in section.rows]
        if len(rows) > ROWS_MAX:
            raise ValueError(f"sections: at most {ROWS_MAX} rows in all, got {len(rows)}")
        _unique("sections", [row.id for row in rows])
        if len(self.sections or []) > 1 and any(not s.title for s in self.sections or []):
            raise ValueError("sections: each section needs a `title` when there are several")
        return self

    def choices(self) -> list[tuple[str, str]]:
        """(id, title) of what the customer can tap, in order."""
        if self.type == "button":
            return [(b.id, b.title) for b in self.buttons or []]
        return [(r.id, r.title) for s in self.sections or [] for r in s.rows]


def _unique(field: str, values: list[str], what: str = "ids") -> None:
    if len(set(values)) != len(values):
        raise ValueError(f"{field}: {what} must be unique")


def numbered_text(spec: dict[str, Any]) -> str:
    """The text that stands in for an interactive message: body, then numbered choices (or
    the link)."""
    interactive = Interactive.model_validate(spec)
    lines = [interactive.header] if interactive.header else []
    lines.append(interactive.body)
    if interactive.type == "cta_url":
        lines.append(f"{interactive.display_text}: {interactive.url}")
    else:
        lines += [f"{i}. {title}" for i, (_, title) in enumerate(interactive.choices(), 1)]
    if interactive.footer:
        lines.append(interactive.footer)
    return "\n".join(lines)


def typed_choice(text: str, ids: Sequence[str]) -> str | None:
    """The id of the choice a customer picked by typing its number under numbered text ("2":
    the second of ``ids``, in the order sent), or None: not a place in the list, or itself one
    of the ids (then it names that one)."""
    place = typed_number(text)
    if place is None or text.strip() in ids:
        return None
    return ids[place - 1] if 1 <= place <= len(ids) else None


def typed_number(text: str) -> int | None:
    """A number of one or two digits typed alone ("2"), else None."""
    text = text.strip()
    return int(text) if text.isdecimal() and len(text) <= 2 else None


def cloud_interactive(spec: dict[str, Any]) -> dict[str, Any]:
    """The Cloud API ``interactive`` object."""
    interactive = Interactive.model_validate(spec)
    built: dict[str, Any] = {"type": interactive.type, "body": {"text": interactive.body}}
    if interactive.header:
        built["header"] = {"type": "text", "text": interactive.header}
    if interactive.footer:
        built["footer"] = {"text": interactive.footer}
    if interactive.type == "button":
        buttons = [
            {"type": "reply", "reply": {"id": b.id, "title": b.title}}
            for b in interactive.buttons or []
        ]
        built["action"] = {"buttons": buttons}
    elif interactive.type == "list":
        sections = [s.model_dump(exclude_none=True) for s in interactive.sections or []]
        built["action"] = {"button": interactive.button, "sections": sections}
    else:
        parameters = {"display_text": interactive.display_text, "url": str(interactive.url)}
        built["action"] = {"name": "cta_url", "parameters": parameters}
    return built


def fits(spec: dict[str, Any]) -> bool:
    """Whether ``spec`` is within Meta's limits (a flow's older node may exceed them: its
    choices' titles allowed 64 characters)."""
    try:
        Interactive.model_validate(spec)
    except ValueError:
        return False
    return True
