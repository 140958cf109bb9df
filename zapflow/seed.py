"""``zapflow seed-demo``: fill a company with realistic demo data, loaded with ``COPY``.

A seeded company holds a Cloud API and an Evolution instance, a few agents, contacts with Brazilian
and English names (+55 mobiles, a few +1 and +44), one or two conversations per contact, messages
in Portuguese and English over the last 90 days (a few long threads, many short ones), the funnels
"Vendas" and "Suporte", and deals for about a tenth of the contacts.

Names, texts, counts and times relative to now all follow ``seed``; ids are random, so seeding the
same database twice never collides. Rows are generated lazily and streamed to ``COPY`` in chunks:
memory holds a small record per contact and conversation, never the messages. A conversation's
counters and last-message fields are written before its messages, so its chat is generated twice
from the same per-conversation seed: once to summarize it, once to write it.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
import secrets
import string
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, Literal, NamedTuple, TypeVar, cast

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlmodel import col

from zapflow.config import Settings
from zapflow.db import create_engine
from zapflow.errors import NotFound
from zapflow.models import (
    Company,
    ConversationStatus,
    DealStatus,
    Funnel,
    MessageDirection,
    MessageSender,
    MessageStatus,
    MessageType,
    Stage,
    User,
    UserRole,
    WhatsAppInstance,
    WhatsAppProvider,
)
from zapflow.services.auth import create_api_key, create_company
from zapflow.services.conversations import PREVIEW_LENGTH
from zapflow.services.instances import create_instance
from zapflow.services.reports import rebuild_rollups
from zapflow.workflows.inputs import ConversationRef

Lang = Literal["pt", "en"]
Row = tuple[Any, ...]
T = TypeVar("T")

CHUNK_SIZE = 50_000
WINDOW = timedelta(days=90)
DEAL_SHARE = 0.10
MAX_CONVERSATIONS_PER_CONTACT = 2  # one per instance: (instance, remote_jid) is unique
MAX_CONTACTS = 10_000_000  # the phone numbers below are unique up to this many contacts

# --- vocabulary ------------------------------------------------------------------------------

PT_FIRST = (
    "João", "Maria", "José", "Ana", "Pedro", "Juliana", "Lucas", "Fernanda", "Gabriel", "Camila",
    "Rafael", "Beatriz", "Mateus", "Larissa", "Felipe", "Mariana", "Gustavo", "Letícia", "Bruno",
    "Amanda", "Thiago", "Patrícia", "Rodrigo", "Aline", "Diego", "Vanessa", "Leonardo", "Natália",
    "Carlos", "Joana", "Eduardo", "Tatiane", "Marcelo", "Priscila", "Vinícius", "Raquel", "André",
    "Luana", "Joaquim", "Francisca", "Antônio", "Sebastião", "Luíza", "Caio", "Heloísa",
)  # fmt: skip
PT_LAST = (
    "Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira", "Lima",
    "Gomes", "Costa", "Ribeiro", "Martins", "Carvalho", "Almeida", "Lopes", "Soares", "Fernandes",
    "Vieira", "Barbosa", "Rocha", "Dias", "Nascimento", "Andrade", "Moreira", "Nunes", "Marques",
    "Machado", "Mendes", "Freitas", "Cardoso", "Ramos", "Gonçalves", "Santana", "Teixeira",
    "Araújo", "Pinto", "Cavalcanti", "Monteiro", "Moura",
)  # fmt: skip
EN_FIRST = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Sarah", "Richard", "Jessica", "Thomas", "Emily", "Daniel", "Olivia",
    "Matthew", "Sophie", "Oliver", "Charlotte", "Harry", "Amelia", "George", "Emma", "Jack",
    "Chloe", "Noah", "Grace",
)  # fmt: skip
EN_LAST = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Taylor",
    "Anderson", "Thomas", "Moore", "Martin", "Jackson", "Thompson", "White", "Harris", "Clark",
    "Lewis", "Walker", "Hall", "Young", "King", "Wright", "Scott", "Green", "Baker", "Evans",
    "Roberts", "Turner",
)  # fmt: skip
BR_DDD = (11, 11, 11, 21, 21, 31, 41, 47, 48, 51, 61, 62, 71, 81, 85, 91, 92, 27, 19, 13)
US_AREA = (212, 305, 312, 415, 617, 646, 713, 786, 818, 407)
BR_CITIES = (
    "São Paulo", "Rio de Janeiro", "Belo Horizonte", "Curitiba", "Porto Alegre", "Salvador",
    "Recife", "Fortaleza", "Brasília", "Goiânia", "Florianópolis", "Campinas", "Manaus", "Belém",
    "Vitória", "Santos", "Joinville",
)  # fmt: skip
EN_CITIES = ("Miami", "New York", "Orlando", "Boston", "Chicago", "London", "Manchester", "Leeds")
PT_DOMAINS = ("gmail.com", "gmail.com", "hotmail.com", "outlook.com", "yahoo.com.br", "uol.com.br")
EN_DOMAINS = ("gmail.com", "gmail.com", "yahoo.com", "outlook.com", "icloud.com", "aol.com")
SOURCES = ("instagram", "google", "indicação", "facebook", "site", "loja física")
TAGS = (  # (tag, share of contacts carrying it)
    ("cliente", 0.30), ("lead", 0.25), ("varejo", 0.12), ("newsletter", 0.15),
    ("recorrente", 0.10), ("instagram", 0.10), ("suporte", 0.08), ("black-friday", 0.06),
    ("atacado", 0.05), ("indicação", 0.05), ("vip", 0.04), ("inadimplente", 0.02),
)  # fmt: skip
AGENTS = (
    ("Ana Souza", UserRole.ADMIN), ("Bruno Lima", UserRole.AGENT),
    ("Carla Mendes", UserRole.AGENT), ("Diego Rocha", UserRole.AGENT),
    ("Fernanda Alves", UserRole.AGENT), ("Rafael Costa", UserRole.AGENT),
)  # fmt: skip
FUNNELS = {  # name -> (description, [(stage, color, share of the funnel's deals)])
    "Vendas": (
        "Do primeiro contato ao pedido fechado",
        [("Novo", "#64748b", 0.30), ("Qualificado", "#3b82f6", 0.25),
         ("Proposta", "#f59e0b", 0.20), ("Negociação", "#8b5cf6", 0.12),
         ("Fechado", "#22c55e", 0.13)],
    ),
    "Suporte": (
        "Chamados de clientes",
        [("Aberto", "#ef4444", 0.30), ("Em atendimento", "#f59e0b", 0.30),
         ("Aguardando cliente", "#64748b", 0.15), ("Resolvido", "#22c55e", 0.25)],
    ),
}  # fmt: skip
SALES_ITEMS = (
    ("Plano Pro anual", 1990), ("Kit 12 unidades", 480), ("Consultoria de implantação", 6500),
    ("Assinatura mensal", 149), ("Pacote empresarial", 12900), ("Combo família", 890),
    ("Treinamento da equipe", 3200), ("Pedido atacado", 7400),
)  # fmt: skip
SUPPORT_ITEMS = (
    "Troca de produto", "Atraso na entrega", "Problema no pagamento", "Segunda via de boleto",
    "Produto com defeito", "Dúvida sobre garantia", "Cancelamento de pedido",
)  # fmt: skip

Topic = Literal["price", "delivery", "schedule"]
TOPICS: tuple[Topic, ...] = ("price", "delivery", "schedule")


@dataclass(frozen=True)
class Phrases:
    """One language's lines; ``{name}``, ``{item}``, ``{city}``, ``{n}``, ``{price}``, ``{hour}``
    are filled in per message."""

    hello: tuple[str, ...]
    agent_hello: tuple[str, ...]
    questions: dict[Topic, tuple[str, ...]]
    answers: dict[Topic, tuple[str, ...]]
    thanks: tuple[str, ...]
    closing: tuple[str, ...]
    follow_up: tuple[str, ...]
    follow_up_reply: tuple[str, ...]
    items: tuple[str, ...]
    catalog: str


PHRASES: dict[Lang, Phrases] = {
    "pt": Phrases(
        hello=("Oi", "Olá, boa tarde!", "Bom dia!", "Oi, tudo bem?", "Boa noite", "Olá",
               "Oi! Vi o anúncio de vocês no Instagram", "Bom dia, tudo bom?"),
        agent_hello=("Olá {name}! Tudo bem? Como posso ajudar?",
                     "Oi {name}, bom dia! Em que posso te ajudar?",
                     "Olá {name}, obrigado pelo contato! Como posso ajudar?",
                     "Oi {name}! Claro, me conta o que você precisa 😊"),
        questions={
            "price": ("Quanto custa o {item}?", "Qual o valor do {item}?",
                      "Vocês têm desconto para pagamento à vista?", "Aceitam Pix?",
                      "Consigo parcelar o {item} em quantas vezes?",
                      "Tem alguma promoção essa semana?"),
            "delivery": ("Vocês entregam em {city}?", "Qual o prazo de entrega para {city}?",
                         "Meu pedido ainda não chegou, pode verificar?", "O frete é grátis?",
                         "Qual transportadora vocês usam?", "Já saiu para entrega?"),
            "schedule": ("Qual o horário de funcionamento?",
                         "Tem horário disponível amanhã às {hour}h?",
                         "Posso agendar uma visita para sábado?", "Vocês abrem no feriado?",
                         "Consigo remarcar meu horário?"),
        },
        answers={
            "price": ("O {item} está saindo por R$ {price},00.",
                      "Conseguimos fazer em até {n}x sem juros no cartão.",
                      "Sim! No Pix tem 5% de desconto 😉",
                      "Essa semana o {item} está com 10% de desconto, de R$ {price},00."),
            "delivery": ("Entregamos sim! O prazo para {city} é de {n} dias úteis.",
                         "O frete é grátis para compras acima de R$ 199,00.",
                         "Verifiquei aqui: seu pedido saiu para entrega e chega em até {n} dias.",
                         "Enviamos pelos Correios e por transportadora, você escolhe no site."),
            "schedule": ("Funcionamos de segunda a sexta, das 9h às 18h, e sábado das 9h às 13h.",
                         "Temos horário amanhã às {hour}h, posso confirmar?",
                         "Agendado! Te esperamos às {hour}h.",
                         "No feriado abrimos das 10h às 14h."),
        },
        thanks=("Obrigado!", "Muito obrigada 🙏", "Perfeito, obrigado!", "Valeu!",
                "Show, vou fechar então", "Combinado, obrigado pela ajuda", "Ok, obrigado",
                "Beleza, vou pensar e te retorno"),
        closing=("Por nada, {name}! Qualquer dúvida estou à disposição.",
                 "Disponha! Tenha um ótimo dia 😊", "Nós que agradecemos!",
                 "Imagina! Estamos aqui se precisar."),
        follow_up=("Oi {name}, tudo bem? Passando para saber se ficou alguma dúvida sobre o "
                   "orçamento.",
                   "Olá {name}! Seu pedido foi enviado e chega em até {n} dias úteis.",
                   "Oi {name}! Temos novidades no {item}, quer que eu te mande os detalhes?",
                   "Olá {name}, lembrando do seu horário amanhã às {hour}h."),
        follow_up_reply=("Oi! Ainda estou vendo, te aviso", "Opa, pode mandar sim",
                         "Obrigado pelo aviso!", "Confirmado, estarei aí"),
        items=("Plano Pro", "kit com 12 unidades", "combo família", "produto da vitrine",
               "modelo novo", "serviço de instalação"),
        catalog="Segue nosso catálogo atualizado",
    ),
    "en": Phrases(
        hello=("Hi", "Hello!", "Good morning", "Hi there, how are you?", "Hey",
               "Hello, I saw your ad on Instagram"),
        agent_hello=("Hi {name}! How can I help you today?",
                     "Hello {name}, thanks for reaching out! What can I do for you?",
                     "Good morning {name}! How can I help?"),
        questions={
            "price": ("How much is the {item}?", "What's the price of the {item}?",
                      "Do you offer any discount?", "Can I pay in installments?",
                      "Is there a promotion this week?"),
            "delivery": ("Do you ship to {city}?", "How long does delivery to {city} take?",
                         "My order hasn't arrived yet, could you check?",
                         "Is shipping free?"),
            "schedule": ("What are your opening hours?",
                         "Do you have a slot tomorrow at {hour}?",
                         "Can I book a visit on Saturday?", "Are you open on the holiday?"),
        },
        answers={
            "price": ("The {item} is R$ {price}.00.",
                      "You can pay in up to {n} installments with no interest.",
                      "Yes, 10% off this week!"),
            "delivery": ("Yes, we do! Delivery to {city} takes {n} business days.",
                         "Shipping is free on orders over R$ 199.",
                         "I checked: your order is out for delivery and arrives within {n} days."),
            "schedule": ("We're open Monday to Friday, 9am to 6pm.",
                         "We have a slot tomorrow at {hour}, shall I book it?",
                         "Booked! See you at {hour}."),
        },
        thanks=("Thanks!", "Thank you so much", "Perfect, thanks!", "Great, thank you",
                "Ok, I'll think about it", "Awesome 👍"),
        closing=("You're welcome, {name}! Let me know if you need anything else.",
                 "Anytime! Have a great day.", "Happy to help!"),
        follow_up=("Hi {name}, just checking in: any questions about the quote?",
                   "Hello {name}! Your order has shipped and arrives within {n} business days.",
                   "Hi {name}, a reminder of your appointment tomorrow at {hour}."),
        follow_up_reply=("Not yet, I'll let you know", "Great, thanks!", "Confirmed, see you"),
        items=("Pro plan", "12-unit kit", "family bundle", "new model", "installation service"),
        catalog="Here is our latest catalog",
    ),
}  # fmt: skip

# --- plain values for COPY (CHECK constraints accept exactly these) ----------------------------

INBOUND, OUTBOUND = MessageDirection.INBOUND.value, MessageDirection.OUTBOUND.value
TEXT, IMAGE, AUDIO, DOCUMENT = (
    MessageType.TEXT.value,
    MessageType.IMAGE.value,
    MessageType.AUDIO.value,
    MessageType.DOCUMENT.value,
)
SENT, DELIVERED, READ, RECEIVED = (
    MessageStatus.SENT.value,
    MessageStatus.DELIVERED.value,
    MessageStatus.READ.value,
    MessageStatus.RECEIVED.value,
)
CUSTOMER, AGENT, AI, FLOW, FOLLOWUP, PHONE = (
    MessageSender.CUSTOMER.value,
    MessageSender.AGENT.value,
    MessageSender.AI.value,
    MessageSender.FLOW.value,
    MessageSender.FOLLOWUP.value,
    MessageSender.PHONE.value,
)
OPEN, CLOSED = ConversationStatus.OPEN.value, ConversationStatus.CLOSED.value

CONTACT_COLUMNS = (
    "id", "company_id", "phone_number", "wa_id", "name", "email", "tags", "custom_fields",
    "created_at", "updated_at",
)  # fmt: skip
CONVERSATION_COLUMNS = (
    "id", "company_id", "instance_id", "contact_id", "remote_jid", "status", "is_paused",
    "assigned_user_id", "last_message_at", "last_inbound_at", "last_message_preview",
    "unread_count", "message_count", "workflow_id", "created_at", "updated_at",
)  # fmt: skip
MESSAGE_COLUMNS = (
    "id", "company_id", "conversation_id", "instance_id", "message_key_id", "direction",
    "from_me", "type", "body", "media", "provider_timestamp", "status", "status_updated_at",
    "sent_by", "sent_by_user_id", "created_at",
)  # fmt: skip
DEAL_COLUMNS = (
    "id", "company_id", "title", "value", "currency", "funnel_id", "stage_id", "contact_id",
    "owner_user_id", "status", "closed_at", "created_at", "updated_at",
)  # fmt: skip
STAGE_CHANGE_COLUMNS = (
    "id", "company_id", "deal_id", "from_stage_id", "to_stage_id", "changed_by_user_id",
    "created_at",
)  # fmt: skip


# --- options and result -----------------------------------------------------------------------


@dataclass(frozen=True)
class SeedOptions:
    contacts: int
    messages: int
    company_name: str = "Demo Company"
    company_id: uuid.UUID | None = None  # fill this company instead of creating one
    conversations_per_contact: int = 1
    seed: int = 42
    chunk_size: int = CHUNK_SIZE

    def __post_init__(self) -> None:
        if not 0 <= self.contacts <= MAX_CONTACTS:
            raise ValueError(f"contacts must be between 0 and {MAX_CONTACTS:,}")
        if self.messages < 0:
            raise ValueError("messages cannot be negative")
        if not 1 <= self.conversations_per_contact <= MAX_CONVERSATIONS_PER_CONTACT:
            raise ValueError("conversations per contact must be 1 or 2 (one per instance)")
        if self.messages and not self.contacts:
            raise ValueError("messages need contacts to talk to")


@dataclass(frozen=True)
class SeedResult:
    company_id: uuid.UUID
    api_key: str  # a fresh admin key, shown once
    contacts: int
    conversations: int
    messages: int
    deals: int
    seconds: float

    @property
    def rows(self) -> int:
        return self.contacts + self.conversations + self.messages + self.deals


# --- in-memory plan: one small record per contact and per conversation -------------------------


@dataclass(frozen=True)
class Instance:
    id: uuid.UUID
    provider: str


@dataclass(frozen=True)
class Workspace:
    """What the bulk rows point at: the company, its agents, instances and funnels' stages."""

    company_id: uuid.UUID
    api_key: str
    agents: list[uuid.UUID]
    instances: list[Instance]  # [cloud, evolution]
    funnels: dict[str, tuple[uuid.UUID, list[uuid.UUID]]]  # name -> (id, stage ids by position)


@dataclass(slots=True)
class Person:
    id: uuid.UUID
    digits: str
    first_name: str
    last_name: str
    lang: Lang
    first_seen: datetime | None = None  # when their first conversation started


@dataclass(slots=True)
class Chat:
    """A conversation and the summary of its messages (what its counters must say)."""

    id: uuid.UUID
    person: int
    instance: Instance
    seed: int
    count: int
    assigned: uuid.UUID | None = None
    is_paused: bool = False
    status: str = OPEN
    first_at: datetime | None = None
    last_at: datetime | None = None
    last_inbound_at: datetime | None = None
    preview: str | None = None
    unread: int = 0


class Said(NamedTuple):
    """A line of a chat's script, before it has a time."""

    direction: str
    type: str
    body: str | None
    media: str | None  # JSON text
    opens_session: bool = False
    follow_up: bool = False  # the business wrote first (a follow-up or a flow)


class Line(NamedTuple):
    """A chat message with its time, status and sender, before it gets ids."""

    at: datetime
    direction: str
    type: str
    body: str | None
    media: str | None
    status: str
    status_at: datetime | None
    sent_by: str
    agent: uuid.UUID | None


class Handling(NamedTuple):
    assigned: uuid.UUID | None
    is_paused: bool
    ai_handled: bool


# --- generators -------------------------------------------------------------------------------


def _ascii(value: str) -> str:
    return unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().lower()


def _phone_digits(index: int, rng: random.Random, salt: int) -> str:
    """Unique per index: the local part is a bijection of the index (48271 is prime to 10)."""
    roll = rng.random()
    local = index * 48271 + salt
    if roll < 0.92:
        return f"55{rng.choice(BR_DDD)}9{local % 10**8:08d}"
    if roll < 0.97:
        return f"1{rng.choice(US_AREA)}{local % 10**7:07d}"
    return f"447{local % 10**9:09d}"


def plan_people(rng: random.Random, count: int, taken: set[str]) -> list[Person]:
    """``count`` people with numbers not in ``taken`` (the company's), which gains theirs."""
    salt = rng.randrange(10**9)
    people: list[Person] = []
    for index in itertools.count():
        if len(people) == count:
            break
        digits = _phone_digits(index, rng, salt)
        english = not digits.startswith("55") or rng.random() < 0.03
        first, last = (EN_FIRST, EN_LAST) if english else (PT_FIRST, PT_LAST)
        lang: Lang = "en" if english else "pt"
        person = Person(uuid.uuid4(), digits, rng.choice(first), rng.choice(last), lang)
        if digits not in taken:
            taken.add(digits)
            people.append(person)
    return people


def message_counts(rng: random.Random, chats: int, messages: int) -> list[int]:
    """``messages`` split over ``chats``: one each, the rest by a heavy tail (lognormal)."""
    if messages < chats:
        counts = [1] * messages + [0] * (chats - messages)
        rng.shuffle(counts)
        return counts
    weights = [rng.lognormvariate(0.0, 1.3) for _ in range(chats)]
    spare, total = messages - chats, sum(weights)
    counts = [1 + int(spare * weight / total) for weight in weights]
    for index in rng.sample(range(chats), messages - sum(counts)):
        counts[index] += 1
    return counts


@functools.cache
def _blanks(template: str) -> tuple[str, ...]:
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


class Rng(random.Random):
    """``random.Random`` with a faster ``choice`` (the generator's hottest call)."""

    def choice(self, seq: Sequence[T]) -> T:  # type: ignore[override]
        return seq[int(self.random() * len(seq))]


class Writer:
    """Writes one chat's script in one language, filling the templates' blanks at random."""

    def __init__(self, rng: Rng, lang: Lang, name: str) -> None:
        self.rng = rng
        self.phrases = PHRASES[lang]
        self.cities = BR_CITIES if lang == "pt" else EN_CITIES
        self.name = name
        self.lines: list[Said] = []

    def fill(self, template: str) -> str:
        blanks = _blanks(template)
        if not blanks:
            return template
        return template.format(**{blank: self.blank(blank) for blank in blanks})

    def blank(self, blank: str) -> object:
        rng = self.rng
        match blank:
            case "name":
                return self.name
            case "item":
                return rng.choice(self.phrases.items)
            case "city":
                return rng.choice(self.cities)
            case "price":
                return rng.choice((49, 89, 149, 199, 290, 480, 990, 1490, 1990))
            case "hour":
                return rng.choice((9, 10, 11, 14, 15, 16, 17))
        return rng.choice(range(2, 13))  # n: days, installments

    def say(self, direction: str, choices: Sequence[str], **flags: bool) -> None:
        body = self.fill(self.rng.choice(choices))
        self.lines.append(Said(direction, TEXT, body, None, **flags))

    def ask(self, topic: Topic) -> None:
        roll = self.rng.random()
        if roll < 0.04:  # a voice note
            media = _media(self.rng, "audio/ogg", voice=True)
            self.lines.append(Said(INBOUND, AUDIO, None, media))
        elif roll < 0.08:  # a photo with the question as caption
            media = _media(self.rng, "image/jpeg")
            body = self.fill(self.rng.choice(self.phrases.questions[topic]))
            self.lines.append(Said(INBOUND, IMAGE, body, media))
        else:
            self.say(INBOUND, self.phrases.questions[topic])

    def answer(self, topic: Topic) -> None:
        if self.rng.random() < 0.03:
            media = _media(self.rng, "application/pdf", "catalogo.pdf")
            self.lines.append(Said(OUTBOUND, DOCUMENT, self.phrases.catalog, media))
        else:
            self.say(OUTBOUND, self.phrases.answers[topic])

    def session(self) -> None:
        """Greeting, question, answer, maybe more questions, thanks; or a follow-up and reply."""
        rng, phrases = self.rng, self.phrases
        if self.lines and rng.random() < 0.15:
            self.say(OUTBOUND, phrases.follow_up, opens_session=True, follow_up=True)
            self.say(INBOUND, phrases.follow_up_reply)
            return
        self.say(INBOUND, phrases.hello, opens_session=True)
        if rng.random() < 0.6:
            self.say(OUTBOUND, phrases.agent_hello)
        for _ in range(1 + rng.choice((0, 0, 0, 1, 1, 2))):
            topic = rng.choice(TOPICS)
            self.ask(topic)
            self.answer(topic)
        self.say(INBOUND, phrases.thanks)
        if rng.random() < 0.6:
            self.say(OUTBOUND, phrases.closing)


def _media(
    rng: random.Random, mime_type: str, filename: str | None = None, *, voice: bool = False
) -> str:
    media = {"id": f"{rng.getrandbits(64):016x}", "url": None, "mime_type": mime_type,
             "caption": None, "filename": filename, "voice": voice, "sha256": None}  # fmt: skip
    return json.dumps(media)


def _offsets(rng: random.Random, script: Sequence[Said], session_gap: float) -> list[float]:
    """Seconds from the first line: seconds to minutes within a session, days between them."""
    offsets = [0.0]
    for previous, said in itertools.pairwise(script):
        if said.opens_session:
            gap = 3600 + rng.expovariate(1 / session_gap)
        elif said.direction == previous.direction:
            gap = rng.uniform(3, 90)
        elif said.direction == OUTBOUND:
            gap = 10 + rng.expovariate(1 / 240)  # an agent answers in minutes
        else:
            gap = 5 + rng.expovariate(1 / 600)
        offsets.append(offsets[-1] + gap)
    return offsets


def chat_lines(
    chat: Chat, person: Person, agents: Sequence[uuid.UUID], now: datetime
) -> tuple[Handling, list[Line]]:
    """Who handles the chat and its messages, oldest first; the same seed gives the same chat."""
    rng = Rng(chat.seed)
    assigned = rng.choice(agents) if agents and rng.random() < 0.6 else None
    handling = Handling(
        assigned, is_paused=assigned is not None and rng.random() < 0.4,
        ai_handled=assigned is None and rng.random() < 0.5,
    )  # fmt: skip
    if chat.count == 0:
        return handling, []
    writer = Writer(rng, person.lang, person.first_name)
    while len(writer.lines) < chat.count:
        writer.session()
    script = writer.lines[: chat.count]
    # long threads have many sessions: their gaps shrink so the chat fits in the window
    offsets = _offsets(rng, script, min(4 * 86400, 60 * 86400 * 7 / chat.count))
    window = WINDOW.total_seconds() - 600
    scale = min(1.0, window * 0.95 / offsets[-1]) if offsets[-1] else 1.0
    span = offsets[-1] * scale
    age = (window - span) * rng.random() ** 2  # of the newest line: recent chats dominate
    start = now - timedelta(seconds=age + span)
    last_inbound = max(
        (i for i, said in enumerate(script) if said.direction == INBOUND), default=-1
    )
    lines = []
    for index, (said, offset) in enumerate(zip(script, offsets, strict=True)):
        at = start + timedelta(seconds=offset * scale)
        if said.direction == INBOUND:
            lines.append(
                Line(at, INBOUND, said.type, said.body, said.media, RECEIVED, None, CUSTOMER, None)
            )
            continue
        status = READ if index < last_inbound else _unanswered_status(rng, now - at)
        status_at = min(now, at + timedelta(seconds=rng.uniform(1, 900)))
        sent_by, agent = _sender(rng, said, handling, agents)
        lines.append(
            Line(at, OUTBOUND, said.type, said.body, said.media, status, status_at, sent_by, agent)
        )
    return handling, lines


def _unanswered_status(rng: random.Random, age: timedelta) -> str:
    roll = rng.random()
    if age > timedelta(days=1):
        return READ if roll < 0.7 else DELIVERED
    return READ if roll < 0.4 else DELIVERED if roll < 0.8 else SENT


def _sender(
    rng: random.Random, said: Said, handling: Handling, agents: Sequence[uuid.UUID]
) -> tuple[str, uuid.UUID | None]:
    if said.follow_up:
        return (FOLLOWUP if rng.random() < 0.7 else FLOW), None
    roll = rng.random()
    if roll < 0.05:  # typed on the business phone
        return PHONE, None
    if handling.ai_handled and roll < 0.9:
        return AI, None
    return AGENT, handling.assigned or rng.choice(agents)


def summarize(chat: Chat, handling: Handling, lines: Sequence[Line], now: datetime) -> None:
    """Set the conversation's fields as the pipeline would have left them after these lines."""
    chat.assigned, chat.is_paused = handling.assigned, handling.is_paused
    if not lines:  # more chats than messages: an empty conversation, as a contact import makes
        chat.first_at = chat.last_at = now - WINDOW * random.Random(chat.seed).random()
        return
    chat.first_at, chat.last_at = lines[0].at, lines[-1].at
    chat.preview = (lines[-1].body or f"[{lines[-1].type}]")[:PREVIEW_LENGTH]
    inbound = [line for line in lines if line.direction == INBOUND]
    chat.last_inbound_at = inbound[-1].at if inbound else None
    trailing = next(
        (i for i, line in enumerate(reversed(lines)) if line.direction == OUTBOUND), len(lines)
    )
    age = now - chat.last_at
    # agents read most older chats; an answered one left quiet for a week is usually closed
    chat.unread = trailing if age < timedelta(days=3) or chat.seed % 3 == 0 else 0
    if trailing == 0 and age > timedelta(days=7) and chat.seed % 10 < 7:
        chat.status = CLOSED


# --- rows -------------------------------------------------------------------------------------


def jid(digits: str) -> str:
    return f"{digits}@s.whatsapp.net"


def contact_rows(
    rng: random.Random, company_id: uuid.UUID, people: Iterable[Person], now: datetime
) -> Iterator[Row]:
    for person in people:
        first_seen = person.first_seen or now - WINDOW * rng.random()
        created = first_seen - timedelta(seconds=rng.uniform(0, 3 * 86400))
        email = None
        if rng.random() < 0.6:
            local = f"{_ascii(person.first_name)}.{_ascii(person.last_name)}"
            if rng.random() < 0.5:
                local += str(rng.randint(1, 99))
            domains = PT_DOMAINS if person.lang == "pt" else EN_DOMAINS
            email = f"{local}@{rng.choice(domains)}"
        tags = [tag for tag, share in TAGS if rng.random() < share]
        fields: dict[str, str] = {}
        if rng.random() < 0.5:
            cities = BR_CITIES if person.digits.startswith("55") else EN_CITIES
            fields = {"cidade": rng.choice(cities), "origem": rng.choice(SOURCES)}
        yield (
            person.id, company_id, f"+{person.digits}", person.digits,
            f"{person.first_name} {person.last_name}", email, tags, json.dumps(fields),
            created, max(created, first_seen),
        )  # fmt: skip


def conversation_rows(
    company_id: uuid.UUID, chats: Iterable[Chat], people: Sequence[Person]
) -> Iterator[Row]:
    for chat in chats:
        remote_jid = jid(people[chat.person].digits)
        workflow_id = ConversationRef(
            str(company_id), str(chat.instance.id), remote_jid
        ).workflow_id
        yield (
            chat.id, company_id, chat.instance.id, people[chat.person].id, remote_jid, chat.status,
            chat.is_paused, chat.assigned, chat.last_at, chat.last_inbound_at, chat.preview,
            chat.unread, chat.count, workflow_id, chat.first_at, chat.last_at,
        )  # fmt: skip


def message_rows(
    company_id: uuid.UUID,
    chats: Iterable[Chat],
    people: Sequence[Person],
    agents: Sequence[uuid.UUID],
    now: datetime,
) -> Iterator[Row]:
    for chat in chats:
        _, lines = chat_lines(chat, people[chat.person], agents, now)
        cloud = chat.instance.provider == WhatsAppProvider.CLOUD
        for line in lines:
            message_id = uuid.uuid4()
            key_id = f"wamid.{message_id.hex}" if cloud else f"3EB0{message_id.hex[:20].upper()}"
            yield (
                message_id, company_id, chat.id, chat.instance.id, key_id, line.direction,
                line.direction == OUTBOUND, line.type, line.body, line.media, line.at, line.status,
                line.status_at, line.sent_by, line.agent, line.at,
            )  # fmt: skip


def deal_rows(
    rng: random.Random, workspace: Workspace, people: Sequence[Person], now: datetime
) -> tuple[list[Row], list[Row]]:
    """Deals for about a tenth of the people, and each one's stage history up to its stage."""
    deals: list[Row] = []
    changes: list[Row] = []
    company_id = workspace.company_id
    for person in people:
        if rng.random() >= DEAL_SHARE:
            continue
        name = "Vendas" if rng.random() < 0.8 else "Suporte"
        funnel_id, stage_ids = workspace.funnels[name]
        # a filled company's funnel may have other stages than ours: spread over the extra ones
        shares = [share for _, _, share in FUNNELS[name][1]]
        weights = [shares[i] if i < len(shares) else 0.1 for i in range(len(stage_ids))]
        position = rng.choices(range(len(stage_ids)), weights=weights)[0]
        if name == "Vendas":
            item, price = rng.choice(SALES_ITEMS)
            title, value = item, Decimal(price * rng.randint(1, 5)) * Decimal("1.00")
        else:
            title, value = rng.choice(SUPPORT_ITEMS), Decimal("0.00")
        first_seen = person.first_seen or now - WINDOW
        created = first_seen + (now - first_seen) * rng.random() * 0.3
        status, closed = DealStatus.OPEN.value, None
        if position == len(stage_ids) - 1:
            status = DealStatus.WON.value
        elif rng.random() < 0.12:
            status = DealStatus.LOST.value
        if status != DealStatus.OPEN.value:
            closed = created + (now - created) * rng.random()
        owner = rng.choice(workspace.agents) if rng.random() < 0.9 else None
        deal_id = uuid.uuid4()
        moved = _moves(rng, created, closed or now, position)
        deals.append((
            deal_id, company_id, f"{title} · {person.first_name} {person.last_name}", value,
            "BRL", funnel_id, stage_ids[position], person.id, owner, status, closed, created,
            moved[-1] if closed is None else closed,
        ))  # fmt: skip
        for step, at in enumerate(moved):
            from_stage = stage_ids[step - 1] if step else None
            changes.append(
                (uuid.uuid4(), company_id, deal_id, from_stage, stage_ids[step], owner, at)
            )
    return deals, changes


def _moves(rng: random.Random, start: datetime, end: datetime, position: int) -> list[datetime]:
    """When the deal entered each stage up to ``position``: created, then moves in order."""
    points = sorted(rng.random() for _ in range(position))
    return [start, *(start + (end - start) * point for point in points)]


# --- the company's small tables (ORM) ---------------------------------------------------------


async def prepare_workspace(session: AsyncSession, options: SeedOptions) -> Workspace:
    """The company (created, or the one named by id), its agents, instances, funnels, a key."""
    if options.company_id is None:
        company, key = await create_company(session, options.company_name)
        company.timezone = "America/Sao_Paulo"
        company.business_hours = {
            **{day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
            "sat": [["09:00", "13:00"]],
        }
    else:
        found = await session.get(Company, options.company_id)
        if found is None:
            raise NotFound(f"company {options.company_id} not found")
        company = found
        key = await create_api_key(session, company.id, "seed-demo", UserRole.ADMIN)
    workspace = Workspace(
        company_id=company.id,
        api_key=key.plain,
        agents=await _agents(session, company.id),
        instances=[await _instance(session, company.id, provider) for provider in WhatsAppProvider],
        funnels={name: await _funnel(session, company.id, name) for name in FUNNELS},
    )
    await session.flush()
    return workspace


async def _agents(session: AsyncSession, company_id: uuid.UUID) -> list[uuid.UUID]:
    rows = [
        {
            "id": uuid.uuid4(),
            "company_id": company_id,
            "name": name,
            "role": role,
            "email": f"{_ascii(name).replace(' ', '.')}@example.com",
        }
        for name, role in AGENTS
    ]
    await session.execute(
        insert(User).values(rows).on_conflict_do_nothing(index_elements=["company_id", "email"])
    )
    query = (
        select(col(User.id))
        .where(col(User.company_id) == company_id, col(User.email).in_([r["email"] for r in rows]))
        .order_by(col(User.email))
    )
    return list((await session.execute(query)).scalars())


async def _instance(
    session: AsyncSession, company_id: uuid.UUID, provider: WhatsAppProvider
) -> Instance:
    query = (
        select(WhatsAppInstance)
        .where(col(WhatsAppInstance.company_id) == company_id)
        .where(col(WhatsAppInstance.provider) == provider)
        .order_by(col(WhatsAppInstance.created_at))
        .limit(1)
    )
    found = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        fields: dict[str, Any] = (
            {"name": "WhatsApp Cloud (demo)", "phone_number_id": str(secrets.randbelow(10**15)),
             "access_token": secrets.token_urlsafe(32), "app_secret": secrets.token_hex(16),
             "display_phone": "+55 11 4002-8922"}
            if provider == WhatsAppProvider.CLOUD
            else {"name": "Evolution (demo)", "evolution_instance": f"demo-{secrets.token_hex(4)}",
                  "api_key": secrets.token_hex(16), "display_phone": "+55 11 3003-4000"}
        )  # fmt: skip
        found = await create_instance(session, company_id, {"provider": provider, **fields})
    return Instance(found.id, found.provider.value)


async def _funnel(
    session: AsyncSession, company_id: uuid.UUID, name: str
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """The company's funnel of this name with its stages by position; created if missing."""
    query = select(Funnel).where(col(Funnel.company_id) == company_id, col(Funnel.name) == name)
    funnel = (await session.execute(query.limit(1))).scalar_one_or_none()
    if funnel is not None:
        stages = select(col(Stage.id)).where(col(Stage.funnel_id) == funnel.id)
        stage_ids = list((await session.execute(stages.order_by(col(Stage.position)))).scalars())
        if stage_ids:
            return funnel.id, stage_ids
    else:
        description, _ = FUNNELS[name]
        funnel = Funnel(company_id=company_id, name=name, description=description)
        session.add(funnel)
    stage_rows = [
        Stage(company_id=company_id, funnel_id=funnel.id, name=stage, color=color, position=index)
        for index, (stage, color, _) in enumerate(FUNNELS[name][1])
    ]
    session.add_all(stage_rows)
    await session.flush()
    return funnel.id, [stage.id for stage in stage_rows]


async def _taken_numbers(connection: AsyncConnection, company_id: uuid.UUID) -> set[str]:
    """Digits of numbers the company already knows, so a second fill adds new people."""
    result = await connection.execute(
        text(
            "SELECT ltrim(phone_number, '+') FROM contacts"
            " WHERE company_id = :company AND phone_number IS NOT NULL"
            " UNION SELECT split_part(remote_jid, '@', 1) FROM conversations"
            " WHERE company_id = :company"
        ),
        {"company": company_id},
    )
    return set(result.scalars())


# --- loading ----------------------------------------------------------------------------------


class Loader:
    """``COPY`` from lazy rows in chunks, with a progress bar per table."""

    def __init__(
        self, connection: asyncpg.Connection, chunk_size: int, progress: Progress | None
    ) -> None:
        self.connection = connection
        self.chunk_size = chunk_size
        self.progress = progress

    async def copy(
        self, table: str, columns: Sequence[str], rows: Iterable[Row], total: int
    ) -> int:
        advance = self.bar(table, total)
        counted = Counted(rows, advance)
        remaining = iter(counted)
        while (first := next(remaining, None)) is not None:
            # a lazy chunk: Postgres writes while Python generates the rest of it
            chunk = itertools.chain((first,), itertools.islice(remaining, self.chunk_size - 1))
            await self.connection.copy_records_to_table(table, records=chunk, columns=list(columns))
        return counted.count

    def bar(self, table: str, total: int) -> Callable[[int], None]:
        progress = self.progress
        if progress is None:
            return lambda _: None
        task = progress.add_task(table, total=total)
        return lambda rows: progress.advance(task, rows)


class Counted(Generic[T]):
    """Passes items through, counting them and reporting progress every ``step`` items."""

    def __init__(self, items: Iterable[T], advance: Callable[[int], None], step: int = 2000):
        self.items, self.advance, self.step = items, advance, step
        self.count = 0

    def __iter__(self) -> Iterator[T]:
        for item in self.items:
            yield item
            self.count += 1
            if self.count % self.step == 0:
                self.advance(self.step)
        self.advance(self.count % self.step)


LOADED_TABLES = (
    "contacts", "conversations", "messages", "deals", "deal_stage_changes",
    "conversation_resolutions", "sla_targets", "message_rollups",
)  # fmt: skip


async def seed_with_progress(
    settings: Settings, options: SeedOptions, console: Console
) -> SeedResult:
    """``seed_demo`` on the configured database, a progress bar per table on ``console``."""
    columns = (
        TextColumn("{task.description:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    engine = create_engine(settings, pool_size=1)
    try:
        with Progress(*columns, console=console) as progress:
            return await seed_demo(engine, options, progress)
    finally:
        await engine.dispose()


async def seed_demo(
    engine: AsyncEngine, options: SeedOptions, progress: Progress | None = None
) -> SeedResult:
    """Create or fill the company in one transaction, then VACUUM (ANALYZE) what was loaded."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    async with engine.connect() as connection:
        raw = await _driver(connection)
        async with connection.begin():
            session = AsyncSession(bind=connection, expire_on_commit=False, autoflush=False)
            workspace = await prepare_workspace(session, options)
            taken = await _taken_numbers(connection, workspace.company_id)
            loader = Loader(raw, options.chunk_size, progress)
            counts = await _load(loader, workspace, options, taken, now)
            await _report_facts(session, workspace, now)
            await session.close()
        # Outside the transaction (VACUUM refuses one). Beyond the planner's statistics, it sets
        # the visibility map, so index-only scans (counts) skip the heap as after autovacuum.
        await raw.execute(f"VACUUM (ANALYZE) {', '.join(LOADED_TABLES)}")
    return SeedResult(
        workspace.company_id, workspace.api_key, *counts, seconds=time.perf_counter() - started
    )


# The reports' facts as the app would have written them (services/resolutions.py): two teams
# sharing the agents, a resolution per closed conversation (its last day of messages is the
# stretch it closed, an hour or so after the last message), ratings on some of them, and the
# SLA targets of its team (services/slas.py), met or missed by its first response and closing.
TEAMS = ("Vendas", "Suporte")
FIRST_RESPONSE_SECONDS, RESOLUTION_SECONDS = 30 * 60, 8 * 3600
_TEAMS = text(
    """
    INSERT INTO teams (company_id, name, routing_mode, first_response_seconds,
                       resolution_seconds)
    SELECT :company_id, name, 'manual', :first_response, :resolution
      FROM unnest(CAST(:names AS text[])) AS name ON CONFLICT (company_id, name) DO NOTHING
    """
)
# due in wall time, not the company's business hours: what they are measured against is the
# seed's choice either way, and the reports read only status and decision times
_SLA_TARGETS = text(
    """
    INSERT INTO sla_targets (company_id, conversation_id, team_id, user_id, kind, status,
                             started_at, due_at, completed_at, breached_at)
    SELECT r.company_id, r.conversation_id, r.team_id, r.user_id, k.kind,
           CASE WHEN k.done IS NULL THEN 'cancelled' WHEN k.done <= k.due THEN 'met'
                ELSE 'missed' END,
           r.opened_at, k.due, k.done, CASE WHEN k.done > k.due THEN k.due END
      FROM conversation_resolutions r
      JOIN teams t ON t.id = r.team_id
     CROSS JOIN LATERAL (VALUES
           ('first_response', r.opened_at + make_interval(secs => t.first_response_seconds),
            r.first_response_at),
           ('resolution', r.opened_at + make_interval(secs => t.resolution_seconds),
            r.closed_at)) AS k(kind, due, done)
     WHERE r.company_id = :company_id
       AND NOT EXISTS (SELECT 1 FROM sla_targets s WHERE s.conversation_id = r.conversation_id)
    """
)
_MEMBERS = text(
    """
    INSERT INTO team_members (company_id, team_id, user_id)
    SELECT :company_id, t.id, u.user_id
      FROM unnest(CAST(:users AS uuid[])) WITH ORDINALITY AS u(user_id, n)
      JOIN teams t ON t.company_id = :company_id
       AND t.name = (CAST(:names AS text[]))[(1 + u.n % cardinality(CAST(:names AS text[])))::int]
    ON CONFLICT DO NOTHING
    """
)
_RESOLUTIONS = text(
    """
    INSERT INTO conversation_resolutions (company_id, conversation_id, team_id, user_id,
        opened_at, first_response_at, closed_at, handled_by_human, csat_status,
        csat_requested_at, csat_score, csat_rated_at)
    SELECT c.company_id, c.id, tm.team_id, c.assigned_user_id, o.at, fr.at, closed.at,
           fr.at IS NOT NULL,
           CASE WHEN h % 10 < 3 THEN 'done' WHEN h % 10 < 6 THEN 'ignored' ELSE 'none' END,
           CASE WHEN h % 10 < 6 THEN closed.at END,
           CASE WHEN h % 10 < 3 THEN (ARRAY[1, 2, 3, 3, 4, 4, 4, 5, 5, 5])[1 + h / 10 % 10] END,
           CASE WHEN h % 10 < 3 THEN closed.at + interval '3 minutes' END
      FROM conversations c
      CROSS JOIN LATERAL (SELECT abs(hashtext(c.id::text)) AS h) hashed
      CROSS JOIN LATERAL (
          SELECT min(m.created_at) AS at FROM messages m
           WHERE m.conversation_id = c.id AND m.direction = 'inbound'
             AND m.created_at >= c.last_message_at - interval '1 day') o
      CROSS JOIN LATERAL (
          SELECT min(m.created_at) AS at FROM messages m
           WHERE m.conversation_id = c.id AND m.created_at >= o.at
             AND m.sent_by IN ('agent', 'phone')) fr
      CROSS JOIN LATERAL (
          SELECT c.last_message_at + make_interval(mins => 5 + h % 180) AS at) closed
      LEFT JOIN LATERAL (
          SELECT team_id FROM team_members WHERE user_id = c.assigned_user_id
           ORDER BY team_id LIMIT 1) tm ON true
     WHERE c.company_id = :company_id AND c.status = 'closed' AND o.at IS NOT NULL
       AND closed.at < :now
       AND NOT EXISTS (SELECT 1 FROM conversation_resolutions r WHERE r.conversation_id = c.id)
    """
)


async def _report_facts(session: AsyncSession, workspace: Workspace, now: datetime) -> None:
    company_id = workspace.company_id
    names = list(TEAMS)
    sla = {"first_response": FIRST_RESPONSE_SECONDS, "resolution": RESOLUTION_SECONDS}
    await session.execute(_TEAMS, {"company_id": company_id, "names": names, **sla})
    members = {"company_id": company_id, "users": workspace.agents, "names": names}
    await session.execute(_MEMBERS, members)
    await session.execute(_RESOLUTIONS, {"company_id": company_id, "now": now})
    await session.execute(_SLA_TARGETS, {"company_id": company_id})
    await rebuild_rollups(session, company_id, now)


async def _driver(connection: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under SQLAlchemy's: COPY and VACUUM need the driver itself."""
    raw = (await connection.get_raw_connection()).driver_connection
    if raw is None:
        raise RuntimeError("the database connection is closed")
    return cast(asyncpg.Connection, raw)


async def _load(
    loader: Loader,
    workspace: Workspace,
    options: SeedOptions,
    taken: set[str],
    now: datetime,
) -> tuple[int, int, int, int]:
    rng = Rng(options.seed)
    people = plan_people(rng, options.contacts, taken)
    chats = _plan_chats(rng, people, workspace, options, loader, now)
    company_id = workspace.company_id
    contacts = await loader.copy(
        "contacts", CONTACT_COLUMNS,
        contact_rows(Rng(options.seed + 1), company_id, people, now), len(people),
    )  # fmt: skip
    conversations = await loader.copy(
        "conversations", CONVERSATION_COLUMNS, conversation_rows(company_id, chats, people),
        len(chats),
    )  # fmt: skip
    messages = await loader.copy(
        "messages", MESSAGE_COLUMNS,
        message_rows(company_id, chats, people, workspace.agents, now), options.messages,
    )  # fmt: skip
    # The trigger queued them for the embedder: hours of a core for a million messages, so the
    # demo's messages are embedded on demand (`zapflow embeddings backfill --company`). Only
    # the rows of this transaction (its now()) leave: a filled company's live ones stay.
    await loader.connection.execute(
        "DELETE FROM embedding_queue WHERE company_id = $1 AND enqueued_at = now()", company_id
    )
    deals, changes = deal_rows(Rng(options.seed + 2), workspace, people, now)
    await loader.copy("deals", DEAL_COLUMNS, deals, len(deals))
    await loader.copy("deal_stage_changes", STAGE_CHANGE_COLUMNS, changes, len(changes))
    return contacts, conversations, messages, len(deals)


def _plan_chats(
    rng: random.Random,
    people: Sequence[Person],
    workspace: Workspace,
    options: SeedOptions,
    loader: Loader,
    now: datetime,
) -> list[Chat]:
    """Each person's conversations (on the Cloud number, some on Evolution), summarized."""
    per_person = options.conversations_per_contact
    counts = message_counts(rng, len(people) * per_person, options.messages)
    chats: list[Chat] = []
    for index in range(len(people)):
        evolution_first = rng.random() < 0.15
        for n in range(per_person):
            instance = workspace.instances[(n + evolution_first) % 2]
            number = len(chats)
            seed = options.seed * 10_000_019 + number
            chats.append(Chat(uuid.uuid4(), index, instance, seed, counts[number]))
    advance = loader.bar("planning chats", len(chats))
    for chat in Counted(chats, advance):
        person = people[chat.person]
        handling, lines = chat_lines(chat, person, workspace.agents, now)
        summarize(chat, handling, lines, now)
        started = chat.first_at
        if started is not None and (person.first_seen is None or started < person.first_seen):
            person.first_seen = started
    return chats
