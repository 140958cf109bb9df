"""What each recipient of a campaign gets: a template's parameters read from the contact's fields
(with fallbacks), or a text with ``{{name}}``-style fields filled in."""

from __future__ import annotations

from typing import Any

from zapflow.errors import Unprocessable
from zapflow.models import (
    Campaign,
    Contact,
    Template,
)
from zapflow.services import templates
from zapflow.services.messages import OutboundContent

CONTACT_FIELDS = ("name", "phone_number", "email")


def resolve(source: Any, contact: Contact | None, where: str) -> str | None:
    """A parameter's value for ``contact``: ``{"value": ...}``, or ``{"field": "name" |
    "phone_number" | "email" | "custom_fields.<key>", "fallback": ...}``; None when the contact
    has no value and there is no fallback. Without a contact (checking a campaign), a field
    reads as a sample."""
    if not isinstance(source, dict):
        raise Unprocessable(
            f"{where}: give {{'field': ...}} or {{'value': ...}}", details={"field": where}
        )
    if "value" in source:
        return str(source["value"])
    name = source.get("field")
    if not isinstance(name, str) or not (
        name in CONTACT_FIELDS or name.startswith("custom_fields.")
    ):
        raise Unprocessable(
            f"{where}.field: one of name, phone_number, email, custom_fields.<key>",
            details={"field": f"{where}.field"},
        )
    fallback = source.get("fallback")
    if contact is None:
        return "sample"
    if name.startswith("custom_fields."):
        value = (contact.custom_fields or {}).get(name.removeprefix("custom_fields."))
    else:
        value = getattr(contact, name)
    found = str(value).strip() if value not in (None, "") else ""
    return found or (str(fallback) if fallback not in (None, "") else None)


def parameter_values(
    parameters: dict[str, Any], contact: Contact | None, where: str = "message.parameters"
) -> dict[str, Any]:
    """The template values (as ``templates.components_for`` takes them) for ``contact``; a
    missing value (no fallback) is a 422 naming the parameter."""

    def one(source: Any, at: str) -> str:
        value = resolve(source, contact, at)
        if value is None:
            problem = f"the contact has no {source.get('field')} and there is no fallback"
            raise Unprocessable(f"{at}: {problem}", details={"field": at})
        return value

    values: dict[str, Any] = {}
    for part, given in parameters.items():
        at = f"{where}.{part}"
        if part == "header":
            values[part] = one(given, at)
        elif isinstance(given, list):
            values[part] = [one(s, f"{at}.{i + 1}") for i, s in enumerate(given)]
        elif isinstance(given, dict):
            values[part] = {k: one(s, f"{at}.{k}") for k, s in given.items()}
        else:
            raise Unprocessable(f"{at}: a list or an object of parameters", details={"field": at})
    return values


def render_text(text: str, contact: Contact) -> str:
    """A text message's ``{{name}}``-style fields filled from the contact (empty if absent)."""

    def field(match: Any) -> str:
        return resolve({"field": match.group(1), "fallback": ""}, contact, "message.text") or ""

    return templates.PLACEHOLDER.sub(field, text)


def content_for(campaign: Campaign, template: Template | None, contact: Contact) -> OutboundContent:
    message = campaign.message
    if template is None:
        return OutboundContent(type="text", text=render_text(str(message["text"]), contact))
    values = parameter_values(message.get("parameters") or {}, contact)
    components = templates.components_for(template, values)
    spec = {"name": template.name, "language": template.language, "components": components}
    return OutboundContent(type="template", template=spec)
