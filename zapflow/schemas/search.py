"""Search's response shapes: messages found, and similar conversations."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel

from zapflow.models import ConversationStatus
from zapflow.schemas.contacts import ContactRef
from zapflow.schemas.messages import MessagePublic

SearchMode = Literal["semantic", "keyword", "hybrid"]


class ConversationRef(BaseModel):
    id: uuid.UUID
    instance_id: uuid.UUID
    remote_jid: str
    status: ConversationStatus


class SearchResult(BaseModel):
    message: MessagePublic
    conversation: ConversationRef
    contact: ContactRef
    snippet: str
    score: float
    semantic_score: float | None
    keyword_score: float | None


class SearchResults(BaseModel):
    data: list[SearchResult]
    mode: SearchMode
    model: str | None  # the embedding model the semantic side used


class SimilarConversationOut(BaseModel):
    conversation: ConversationRef
    contact: ContactRef
    score: float
    message: MessagePublic


class SimilarConversations(BaseModel):
    data: list[SimilarConversationOut]
    model: str
