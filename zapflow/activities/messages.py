"""Activities that send outbound messages through the provider, once, and record the outcome."""

from __future__ import annotations

import base64
import dataclasses
import logging
import uuid
from datetime import timedelta

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.egress import Egress, EgressRefused
from zapflow.errors import NotFound, ZapflowError
from zapflow.logs import CORRELATION_ID
from zapflow.models import WhatsAppInstance, WhatsAppProvider
from zapflow.services import followups, media_files, messages
from zapflow.services.number_pace import NumberPace, number_rate
from zapflow.whatsapp import ProviderError, client_for
from zapflow.whatsapp.base import ProviderClient
from zapflow.whatsapp.types import OutboundMessage, SendResult
from zapflow.workflows.inputs import (
    MarkReadInput,
    SendFailedInput,
    SendMessageInput,
    SendMessageResult,
)
from zapflow.workflows.policies import SEND_TIMEOUT

log = logging.getLogger(__name__)
# WhatsApp's own limit for audio and video (images: 5 MB; Evolution refuses what WhatsApp would)
MEDIA_MAX_BYTES = 16 * 1024 * 1024
DELIVERY_UNKNOWN = (
    "the worker stopped while the provider was answering, so this message may or may not have "
    "been delivered; it is not resent automatically (check the chat, then retry it)"
)


class MessageActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        http: httpx.AsyncClient,
        egress: Egress,
        settings: Settings,
        pace: NumberPace,
    ) -> None:
        self._sessions = sessions
        self._http = http
        self._egress = egress
        self._settings = settings
        self._pace = pace

    @activity.defn
    async def send_message(self, input: SendMessageInput) -> SendMessageResult:
        message_id = uuid.UUID(input.message_id)
        CORRELATION_ID.set(input.correlation_id)
        try:
            async with transaction(self._sessions) as session:
                job = await messages.claim(session, message_id)
        except messages.AlreadyDone as done:
            return SendMessageResult(status=f"already_{done}")
        except messages.DeliveryUnknown:
            raise ApplicationError(
                DELIVERY_UNKNOWN, type="DeliveryUnknown", non_retryable=True
            ) from None
        except ZapflowError as exc:
            raise ApplicationError(
                exc.message, type="PermanentSendError", non_retryable=True
            ) from None
        # a reply never waits for the number's pace: its slot pushes campaigns' sends back
        await self._pace.take(job.instance.id, number_rate(job.instance.settings))
        try:
            result = await self.provider_send(job)
        except ProviderError as exc:
            await self._release(message_id, exc)
            log.warning(
                "send refused",
                extra={
                    "workflow_id": activity.info().workflow_id,
                    "message_id": input.message_id,
                    "status_code": exc.status_code,
                    "retryable": exc.retryable,
                    "attempt": activity.info().attempt,
                },
            )
            raise _as_application_error(exc) from None
        async with transaction(self._sessions) as session:
            message = await messages.record_sent(session, message_id, result.provider_message_id)
            await followups.message_sent(session, message)
        log.info(
            "message sent",
            extra={
                "workflow_id": activity.info().workflow_id,
                "message_id": input.message_id,
                "message_key_id": result.provider_message_id,
                "provider": job.instance.provider.value,
            },
        )
        return SendMessageResult(status="sent", provider_message_id=result.provider_message_id)

    @activity.defn
    async def mark_read(self, input: MarkReadInput) -> None:
        """Mark a customer's message read at WhatsApp, with the typing indicator."""
        async with transaction(self._sessions) as session:
            found = await messages.read_receipt(session, uuid.UUID(input.message_id))
        if found is None:
            return  # gone since: nothing to tell
        instance, key_id, remote_jid = found
        try:
            await self._client(instance).mark_read(key_id, remote_jid)
        except ProviderError as exc:
            raise _as_application_error(exc) from None

    def _client(self, instance: WhatsAppInstance) -> ProviderClient:
        return client_for(
            instance.provider.value,
            settings=self._settings,
            http=self._http,
            phone_number_id=instance.phone_number_id,
            access_token=instance.access_token,
            instance_name=instance.evolution_instance,
            api_key=instance.api_key,
        )

    async def provider_send(self, job: messages.SendJob) -> SendResult:
        """One provider call for a claimed message (also the campaigns' sends)."""
        instance = job.instance
        message = job.outbound
        if message.media is not None and message.media.media_id is not None:
            message = await self._with_uploaded_media(message, job)
        elif message.media is not None and instance.provider == WhatsAppProvider.EVOLUTION:
            message = await self._with_media_content(message)
        return await self._client(instance).send(message)

    async def _with_uploaded_media(
        self, message: OutboundMessage, job: messages.SendJob
    ) -> OutboundMessage:
        """The message with its uploaded file: the bytes for Evolution; for Meta, which
        fetches a Cloud API ``link`` from the internet, an expiring signed link to the API at
        ``ZAPFLOW_PUBLIC_URL`` (where Meta already reaches the webhook), made at each attempt."""
        media = message.media
        assert media is not None and media.media_id is not None
        provider = job.instance.provider
        media_id, company_id = uuid.UUID(media.media_id), job.message.company_id
        try:
            async with transaction(self._sessions) as session:
                if provider == WhatsAppProvider.EVOLUTION:
                    data = await media_files.content(session, company_id, media_id)
                else:
                    row = await media_files.get_media_file(session, company_id, media_id)
        except NotFound:
            gone = "the uploaded media file is gone"
            raise self._media_error(gone, retryable=False, provider=provider.value) from None
        if provider == WhatsAppProvider.EVOLUTION:
            media = dataclasses.replace(media, content=base64.b64encode(data).decode())
        elif not self._settings.public_url:
            unset = "ZAPFLOW_PUBLIC_URL is not set: Meta cannot fetch an uploaded file"
            raise self._media_error(unset, retryable=False, provider=provider.value)
        else:
            url = self._settings.public_url.rstrip("/") + media_files.signed_path(row)
            media = dataclasses.replace(media, url=url)
        return dataclasses.replace(message, media=media)

    async def _with_media_content(self, message: OutboundMessage) -> OutboundMessage:
        """The message with its media downloaded, through the egress policy.

        An Evolution server would download a media URL itself, from inside the operator's
        network and following redirects: a tenant's URL (or one it redirects to) could reach
        internal services. zapflow downloads it instead, checked, and hands Evolution the bytes.
        (Meta downloads a Cloud API link from the internet: nothing of ours to protect.) The
        download must leave the provider its timeout within the send activity's.
        """
        media = message.media
        assert media is not None
        budget = SEND_TIMEOUT.total_seconds() - self._settings.provider_timeout_seconds - 1
        try:
            response = await self._egress.request(
                "GET",
                str(media.url),
                deadline=budget,
                max_bytes=MEDIA_MAX_BYTES,
                follow_redirects=True,
            )
        except EgressRefused as exc:
            raise self._media_error(f"media URL refused: {exc.reason}", retryable=False) from None
        except httpx.HTTPError as exc:
            raise self._media_error(f"media download failed: {exc!r}", retryable=True) from None
        if response.status >= 300:
            failed = f"media download failed: HTTP {response.status}"
            raise self._media_error(failed, retryable=response.status >= 500)
        mime_type = media.mime_type or response.headers.get("content-type", "").split(";")[0]
        content = base64.b64encode(response.content).decode()
        media = dataclasses.replace(media, content=content, mime_type=mime_type or None)
        return dataclasses.replace(message, media=media)

    @staticmethod
    def _media_error(
        message: str, *, retryable: bool, provider: str = "evolution"
    ) -> ProviderError:
        # nothing reached the provider yet: a retry cannot send twice
        return ProviderError(None, message, retryable=retryable, provider=provider)

    async def _release(self, message_id: uuid.UUID, exc: ProviderError) -> None:
        async with transaction(self._sessions) as session:
            await messages.release(session, message_id, error_dict(exc))

    @activity.defn
    async def record_send_failure(self, input: SendFailedInput) -> None:
        async with transaction(self._sessions) as session:
            message = await messages.record_failed(
                session, uuid.UUID(input.message_id), dict(input.error), input.attempts
            )
            await followups.message_failed(session, message, str(input.error.get("message")))


def error_dict(exc: ProviderError) -> dict[str, object]:
    return {
        "message": exc.message,
        "status_code": exc.status_code,
        "code": exc.code,
        "provider": exc.provider,
        "retryable": exc.retryable,
    }


def _as_application_error(exc: ProviderError) -> ApplicationError:
    delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
    return ApplicationError(
        str(exc),
        error_dict(exc),
        type="ProviderRetryableError" if exc.retryable else "PermanentSendError",
        non_retryable=not exc.retryable,
        next_retry_delay=delay,
    )
