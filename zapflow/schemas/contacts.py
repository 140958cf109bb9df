"""Contacts' shapes: the rules of their fields (E.164 phones, emails, tags, custom fields) as
pydantic types, the create/update bodies, the reference other rows show, and the CSV import's
report. The API, a flow's node and the CSV import all validate through these."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic import ValidationError as PydanticValidationError

from zapflow.errors import Unprocessable
from zapflow.whatsapp import jid as jids

MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254
MAX_TAGS = 50
MAX_TAG_LENGTH = 50
TAG_SEPARATORS = re.compile(r"[;|]")
MAX_CUSTOM_FIELDS = 50
MAX_CUSTOM_KEY_LENGTH = 64
MAX_CUSTOM_VALUE_LENGTH = 1000
MAX_CUSTOM_FIELDS_BYTES = 8192
MAX_REPORTED_ERRORS = 1000

PHONE_CHARS = re.compile(r"^\+?[\d\s().\-]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def normalize_phone(value: str) -> str:
    """Any usual spelling of an international number → E.164 (``+5511999999999``)."""
    number = jids.e164(value) if PHONE_CHARS.match(value) else None
    if number is None or not 7 <= len(number) - 1 <= 15 or number.startswith("+0"):
        raise ValueError("not a phone number: give 7 to 15 digits starting with the country code")
    return number


def normalize_email(value: str) -> str:
    email = value.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email):
        raise ValueError("not an email address")
    return email


def normalize_tag(value: str) -> str:
    tag = value.strip().lower()
    if not tag:
        raise ValueError("a tag cannot be empty")
    if len(tag) > MAX_TAG_LENGTH:
        raise ValueError(f"tag {tag[:20]!r}… is longer than {MAX_TAG_LENGTH} characters")
    if TAG_SEPARATORS.search(tag):
        raise ValueError(f"tag {tag!r} contains ';' or '|' (the CSV separators of tags)")
    return tag


def normalize_tags(values: list[str]) -> list[str]:
    """Trimmed, lower-case, without blanks or repeats, in the given order."""
    tags = list(dict.fromkeys(normalize_tag(v) for v in values if v.strip()))
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return tags


def _check_custom_fields(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > MAX_CUSTOM_FIELDS:
        raise ValueError(f"at most {MAX_CUSTOM_FIELDS} custom fields")
    if len(orjson.dumps(value)) > MAX_CUSTOM_FIELDS_BYTES:
        raise ValueError(f"custom fields take at most {MAX_CUSTOM_FIELDS_BYTES} bytes as JSON")
    return value


Phone = Annotated[
    str,
    AfterValidator(normalize_phone),
    Field(description="E.164 once stored; spaces, dashes and brackets are accepted"),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_NAME_LENGTH)]
Email = Annotated[str, AfterValidator(normalize_email)]
Tag = Annotated[str, AfterValidator(normalize_tag)]
Tags = Annotated[
    list[str],
    AfterValidator(normalize_tags),
    Field(description=f"Lower-cased, deduplicated; at most {MAX_TAGS} of {MAX_TAG_LENGTH} chars"),
]
CustomKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CUSTOM_KEY_LENGTH)]
CustomValue = (
    bool
    | int
    | Annotated[float, Field(allow_inf_nan=False)]
    | Annotated[str, StringConstraints(max_length=MAX_CUSTOM_VALUE_LENGTH)]
    | None
)
CustomFields = Annotated[
    dict[CustomKey, CustomValue],
    AfterValidator(_check_custom_fields),
    Field(description="A flat object: string keys; string, number, boolean or null values"),
]


class ContactFields(BaseModel):
    """What a contact says beside its phone (a CSV row of a customer known only by BSUID or
    username)."""

    model_config = ConfigDict(extra="forbid")

    name: Name = ""
    email: Email | None = None
    tags: Tags = Field(default_factory=list)
    custom_fields: CustomFields = Field(default_factory=dict)


class ContactCreate(ContactFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "phone_number": "+55 11 99999-0001",
                    "name": "Maria Souza",
                    "email": "maria@example.com",
                    "tags": ["lead", "VIP"],
                    "custom_fields": {"plan": "pro", "seats": 5},
                }
            ]
        },
    )

    phone_number: Phone


class ContactUpdate(BaseModel):
    """Only the fields sent change; ``email: null`` clears the email, other fields refuse null."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Maria S. Souza", "tags": ["customer"]}]},
    )

    phone_number: Phone | None = None
    name: Name | None = None
    email: Email | None = None
    tags: Tags | None = None
    custom_fields: CustomFields | None = None

    def changes(self) -> dict[str, Any]:
        changes = self.model_dump(exclude_unset=True)
        nulls = sorted(k for k, v in changes.items() if v is None and k != "email")
        if nulls:
            raise Unprocessable(
                f"{nulls[0]}: may not be null",
                details=[{"field": f"body.{name}", "message": "may not be null"} for name in nulls],
            )
        return changes


def parse_update(fields: dict[str, Any]) -> ContactUpdate:
    """``fields`` validated as the API validates a PATCH body (for callers that are not the
    API, like a flow's node); a refusal names the field."""
    try:
        return ContactUpdate.model_validate(fields)
    except PydanticValidationError as exc:
        error = exc.errors()[0]
        raise Unprocessable(
            f"{error_location(error['loc'])}: {error_message(error['msg'])}"
        ) from None


class ContactRef(BaseModel):
    """A contact as inbox rows, deal rows and the board show it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    phone_number: str | None


class RowError(BaseModel):
    row: int = Field(description="The record's number in the file, the header being row 1")
    field: str | None = Field(description="The column at fault; null for the whole row")
    message: str


class ImportReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "created": 120,
                    "updated": 8,
                    "skipped": 0,
                    "errors": [{"row": 7, "field": "phone_number", "message": "Field required"}],
                    "errors_omitted": 0,
                }
            ]
        }
    )

    created: int = 0
    updated: int = 0
    skipped: int = Field(0, description="Existing contacts left as they were (mode=skip)")
    errors: list[RowError] = Field(default_factory=list, description="Rows not imported, and why")
    errors_omitted: int = Field(0, description=f"Errors past the first {MAX_REPORTED_ERRORS}")

    def fail(self, row: int, column: str | None, message: str) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(RowError(row=row, field=column, message=message))
        else:
            self.errors_omitted += 1


def error_location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def error_message(pydantic_message: str) -> str:
    return pydantic_message.removeprefix("Value error, ")


class ContactPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    phone_number: str | None
    wa_id: str | None
    lid: str | None
    aliases: list[str]
    name: str
    email: str | None
    tags: list[str]
    custom_fields: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class TagIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"tag": "vip"}]})

    tag: Tag


# --- merging duplicates (routes/contact_merge.py) -------------------------------------------


class MergeRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"contact_id": "8f0c2a4e-3b1d-4c55-9a77-1f2e3d4c5b6a", "take": ["email"]},
                {"contact_id": "8f0c2a4e-3b1d-4c55-9a77-1f2e3d4c5b6a", "preview": True},
            ]
        },
    )

    contact_id: uuid.UUID = Field(description="The contact merged into this one (then deleted)")
    take: list[str] = Field(
        default_factory=list,
        max_length=200,
        description="Fields whose merged value wins a conflict: name, email, phone_number, lid, "
        "custom_fields.<key>; the survivor's value wins the others",
    )
    preview: bool = Field(False, description="Report what would happen, change nothing")


class MergeResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "merge_id": "0b7e1c2d-4a5f-4e6b-8c9d-0e1f2a3b4c5d",
                    "survivor_id": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
                    "merged_id": "8f0c2a4e-3b1d-4c55-9a77-1f2e3d4c5b6a",
                    "moved": {"conversations": 1, "messages": 12, "deals": 1, "notes": 2},
                    "conflicts": [
                        {"field": "email", "survivor": "a@x.com", "merged": "b@x.com",
                         "kept": "survivor"}
                    ],
                    "contact": {"name": "Maria Souza"},
                    "preview": False,
                }
            ]
        }
    )  # fmt: skip

    merge_id: uuid.UUID | None
    survivor_id: uuid.UUID
    merged_id: uuid.UUID
    moved: dict[str, int]
    conflicts: list[dict[str, Any]]
    contact: dict[str, Any]
    preview: bool


class DuplicatePair(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "contact_id": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
                    "other_id": "8f0c2a4e-3b1d-4c55-9a77-1f2e3d4c5b6a",
                    "reason": "name_and_phone_suffix",
                }
            ]
        }
    )

    contact_id: uuid.UUID
    other_id: uuid.UUID
    reason: str
