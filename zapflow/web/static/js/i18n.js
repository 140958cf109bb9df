// UI strings in English and Portuguese: the browser's language by default, switchable (the
// choice is kept in localStorage). t("key", {n: 2}) fills {n}.

const STRINGS = {
  en: {
    "lang.label": "Language",
    "signin.intro": "Sign in with your zapflow API key. It stays in this tab only.",
    "signin.key": "API key", "signin.submit": "Sign in", "signin.out": "Sign out",
    "signin.invalid": "That API key is not valid.",
    "signin.email": "E-mail", "signin.password": "Password", "signin.wrong": "Wrong e-mail or password.",
    "signin.useKey": "Use an API key",
    "accept.intro": "Choose your password (at least 10 characters) to sign in.", "accept.password": "New password",
    "accept.submit": "Set password and sign in",
    "role.admin": "Admin", "role.supervisor": "Supervisor", "role.agent": "Agent", "nav.settings": "Settings",
    "people.title": "People", "people.invite": "Invite a person", "people.email": "Their e-mail", "people.name": "Their name",
    "people.role": "Role", "people.send": "Create invite link", "people.link": "One-time link",
    "people.inviteLink": "Give {name} this link to choose a password (it works once, for 7 days):",
    "people.resetLink": "Give {name} this link to choose a new password (it works once, for 24 hours):",
    "people.reset": "Reset link", "people.resetFor": "Reset link for {name}",
    "account.title": "Your account", "account.password": "Password", "account.current": "Current password",
    "account.new": "New password", "account.change": "Change password", "account.changed": "Password changed: your other sessions ended.",
    "canned.label": "Canned responses", "thread.take": "Assign to me", "thread.unassign": "Unassign",
    "thread.assignedTo": "Assigned to {name}", "thread.waiting": "Waiting for the team", "thread.nobody": "Unassigned",
    "inbox.waiting": "Waiting", "inbox.myTeams": "My teams",
    "account.sessions": "Signed-in browsers", "account.thisOne": "this one", "account.revoke": "Sign out there",
    "nav.label": "Sections", "nav.skip": "Skip to content", "nav.inbox": "Inbox", "nav.board": "Deals", "nav.flows": "Flows", "nav.search": "Search",
    "live.connecting": "Connecting…", "live.live": "Live", "live.reconnecting": "Reconnecting…",
    "common.loading": "Loading…", "common.save": "Save", "common.saved": "Saved.",
    "error.network": "The server could not be reached.", "error.unknown": "Something went wrong.",
    "inbox.conversations": "Conversations", "inbox.search": "Search", "inbox.searchPlaceholder": "Search name or phone",
    "inbox.show": "Show", "inbox.all": "All", "inbox.mine": "Mine", "inbox.unassigned": "Unassigned", "inbox.paused": "Bot paused",
    "inbox.moreFilters": "More filters", "inbox.status": "Status", "inbox.open": "Open", "inbox.closed": "Closed",
    "inbox.anyStatus": "Any status", "inbox.tag": "Tag", "inbox.number": "WhatsApp number", "inbox.anyNumber": "Any number",
    "inbox.empty": "No conversations.", "inbox.pick": "Pick a conversation.", "inbox.unreadN": "{n} unread",
    "badge.bot": "Bot", "badge.paused": "Paused", "badge.closed": "Closed",
    "thread.label": "Conversation", "thread.messages": "Messages", "thread.back": "Back to conversations",
    "thread.botActive": "Bot active", "thread.botPaused": "Bot paused", "thread.pause": "Pause bot", "thread.resume": "Resume bot",
    "thread.close": "Close", "thread.reopen": "Reopen", "thread.newMessage": "New message from {name}",
    "thread.openMedia": "Open", "thread.replyTo": "Reply to an earlier message",
    "composer.label": "Message", "composer.placeholder": "Type a message (Enter sends, Shift+Enter: new line)",
    "composer.send": "Send", "composer.failed": "Not sent", "composer.retry": "Retry",
    "composer.tookOver": "You took over: the bot is paused.",
    "status.pending": "Queued", "status.sending": "Sending", "status.sent": "Sent", "status.delivered": "Delivered",
    "status.read": "Read", "status.failed": "Failed", "status.received": "Received", "status.deleted": "Deleted",
    "sender.ai": "AI", "sender.flow": "Flow", "sender.followup": "Follow-up",
    "type.image": "Image", "type.audio": "Audio", "type.video": "Video", "type.document": "Document", "type.sticker": "Sticker",
    "type.location": "Location", "type.reaction": "Reaction", "type.contacts": "Contact card", "type.interactive": "Interactive",
    "type.button": "Button", "type.template": "Template", "type.unsupported": "Unsupported message", "type.system": "System",
    "type.text": "Text",
    "contact.label": "Contact", "contact.open": "Contact", "contact.close": "Back to the conversation",
    "contact.details": "Details", "contact.name": "Name", "contact.phone": "Phone", "contact.email": "E-mail",
    "contact.tags": "Tags", "contact.addTag": "New tag", "contact.add": "Add", "contact.removeTag": "Remove tag {tag}",
    "contact.notes": "Notes", "contact.newNote": "New note", "contact.addNote": "Add note", "contact.deals": "Deals",
    "deal.new": "New deal", "deal.title": "Title", "deal.value": "Value", "deal.funnel": "Funnel", "deal.create": "Create deal",
    "deal.stage": "Stage", "deal.open": "Open", "deal.won": "Won", "deal.lost": "Lost",
    "board.title": "Deals", "board.funnel": "Funnel", "board.noFunnels": "No funnels yet.", "board.dealsN": "{n} deals",
    "followup.title": "Follow-ups", "followup.text": "Follow-up message", "followup.when": "When",
    "followup.inTime": "In", "followup.atTime": "At a date and time", "followup.amount": "How many",
    "followup.unit": "Unit", "followup.minutes": "minutes", "followup.hours": "hours", "followup.days": "days",
    "followup.at": "Date and time", "followup.pickTime": "Pick a date and time.",
    "followup.cancelOnReply": "Cancel if the customer replies", "followup.businessHours": "Only in business hours",
    "followup.schedule": "Schedule follow-up", "followup.cancel": "Cancel follow-up",
    "followup.PENDING": "Scheduled", "followup.SENT": "Sent", "followup.CANCELLED": "Cancelled", "followup.FAILED": "Failed",
    "flows.title": "Flows", "flows.none": "No flows yet.", "flows.pick": "Pick a flow.", "flows.draft": "Draft",
    "flowStatus.draft": "Draft", "flowStatus.published": "Published", "flowStatus.archived": "Archived",
    "flows.published": "Published version {n}.",
    "flows.version": "version {n} is live", "flows.publish": "Publish draft", "flows.diagram": "Diagram",
    "flows.diagramOf": "Diagram of the flow {name}", "flows.versionPick": "Version", "flows.source": "Diagram as text",
    "flows.diagramUnavailable": "The diagram could not be drawn.", "flows.simulate": "Simulate",
    "flows.replies": "Customer replies, one per line (a line with - plays no answer)",
    "flows.repliesHint": "Maria\nlots\n12000", "flows.run": "Run simulation", "flows.outcome": "Outcome:",
    "flows.runs": "Runs", "flows.noRuns": "No runs yet.", "flows.conversation": "Conversation", "flows.cancelRun": "Cancel run",
    "search.title": "Search messages", "search.query": "Words or meaning", "search.mode": "How",
    "search.hybrid": "Words and meaning", "search.keyword": "Exact words", "search.semantic": "Meaning",
    "search.submit": "Search", "search.found": "{n} messages found.",
    "board.more": "More deals in this stage.", "board.moveTo": "Move {title} to", "board.moved": "{title} moved to {stage}",
  },
  pt: {
    "lang.label": "Idioma",
    "signin.intro": "Entre com sua chave de API do zapflow. Ela fica só nesta aba.",
    "signin.key": "Chave de API", "signin.submit": "Entrar", "signin.out": "Sair",
    "signin.invalid": "Essa chave de API não é válida.",
    "signin.email": "E-mail", "signin.password": "Senha", "signin.wrong": "E-mail ou senha incorretos.",
    "signin.useKey": "Usar uma chave de API",
    "accept.intro": "Escolha sua senha (no mínimo 10 caracteres) para entrar.", "accept.password": "Nova senha",
    "accept.submit": "Definir senha e entrar",
    "role.admin": "Admin", "role.supervisor": "Supervisor", "role.agent": "Agente", "nav.settings": "Configurações",
    "people.title": "Pessoas", "people.invite": "Convidar uma pessoa", "people.email": "E-mail da pessoa", "people.name": "Nome",
    "people.role": "Papel", "people.send": "Criar link de convite", "people.link": "Link de uso único",
    "people.inviteLink": "Envie a {name} este link para escolher a senha (vale uma vez, por 7 dias):",
    "people.resetLink": "Envie a {name} este link para escolher uma nova senha (vale uma vez, por 24 horas):",
    "people.reset": "Link de nova senha", "people.resetFor": "Link de nova senha para {name}",
    "account.title": "Sua conta", "account.password": "Senha", "account.current": "Senha atual",
    "account.new": "Nova senha", "account.change": "Trocar senha", "account.changed": "Senha trocada: suas outras sessões foram encerradas.",
    "canned.label": "Respostas prontas", "thread.take": "Atribuir a mim", "thread.unassign": "Desatribuir",
    "thread.assignedTo": "Com {name}", "thread.waiting": "Aguardando a equipe", "thread.nobody": "Sem responsável",
    "inbox.waiting": "Aguardando", "inbox.myTeams": "Minhas equipes",
    "account.sessions": "Navegadores conectados", "account.thisOne": "este", "account.revoke": "Sair lá",
    "nav.label": "Seções", "nav.skip": "Ir para o conteúdo", "nav.inbox": "Conversas", "nav.board": "Negócios", "nav.flows": "Fluxos", "nav.search": "Busca",
    "live.connecting": "Conectando…", "live.live": "Ao vivo", "live.reconnecting": "Reconectando…",
    "common.loading": "Carregando…", "common.save": "Salvar", "common.saved": "Salvo.",
    "error.network": "Não foi possível falar com o servidor.", "error.unknown": "Algo deu errado.",
    "inbox.conversations": "Conversas", "inbox.search": "Buscar", "inbox.searchPlaceholder": "Buscar nome ou telefone",
    "inbox.show": "Mostrar", "inbox.all": "Todas", "inbox.mine": "Minhas", "inbox.unassigned": "Sem responsável",
    "inbox.paused": "Robô pausado", "inbox.moreFilters": "Mais filtros", "inbox.status": "Situação", "inbox.open": "Abertas",
    "inbox.closed": "Encerradas", "inbox.anyStatus": "Qualquer situação", "inbox.tag": "Etiqueta",
    "inbox.number": "Número de WhatsApp", "inbox.anyNumber": "Qualquer número", "inbox.empty": "Nenhuma conversa.",
    "inbox.pick": "Escolha uma conversa.", "inbox.unreadN": "{n} não lidas",
    "badge.bot": "Robô", "badge.paused": "Pausado", "badge.closed": "Encerrada",
    "thread.label": "Conversa", "thread.messages": "Mensagens", "thread.back": "Voltar às conversas",
    "thread.botActive": "Robô ativo", "thread.botPaused": "Robô pausado", "thread.pause": "Pausar robô",
    "thread.resume": "Retomar robô", "thread.close": "Encerrar", "thread.reopen": "Reabrir",
    "thread.newMessage": "Nova mensagem de {name}", "thread.openMedia": "Abrir", "thread.replyTo": "Resposta a uma mensagem anterior",
    "composer.label": "Mensagem", "composer.placeholder": "Digite uma mensagem (Enter envia, Shift+Enter: nova linha)",
    "composer.send": "Enviar", "composer.failed": "Não enviada", "composer.retry": "Tentar de novo",
    "composer.tookOver": "Você assumiu: o robô está pausado.",
    "status.pending": "Na fila", "status.sending": "Enviando", "status.sent": "Enviada", "status.delivered": "Entregue",
    "status.read": "Lida", "status.failed": "Falhou", "status.received": "Recebida", "status.deleted": "Apagada",
    "sender.ai": "IA", "sender.flow": "Fluxo", "sender.followup": "Follow-up",
    "type.image": "Imagem", "type.audio": "Áudio", "type.video": "Vídeo", "type.document": "Documento", "type.sticker": "Figurinha",
    "type.location": "Localização", "type.reaction": "Reação", "type.contacts": "Contato", "type.interactive": "Interativa",
    "type.button": "Botão", "type.template": "Modelo", "type.unsupported": "Mensagem não suportada", "type.system": "Sistema",
    "type.text": "Texto",
    "contact.label": "Contato", "contact.open": "Contato", "contact.close": "Voltar à conversa",
    "contact.details": "Dados", "contact.name": "Nome", "contact.phone": "Telefone", "contact.email": "E-mail",
    "contact.tags": "Etiquetas", "contact.addTag": "Nova etiqueta", "contact.add": "Adicionar",
    "contact.removeTag": "Remover etiqueta {tag}", "contact.notes": "Notas", "contact.newNote": "Nova nota",
    "contact.addNote": "Adicionar nota", "contact.deals": "Negócios",
    "deal.new": "Novo negócio", "deal.title": "Título", "deal.value": "Valor", "deal.funnel": "Funil",
    "deal.create": "Criar negócio", "deal.stage": "Etapa", "deal.open": "Aberto", "deal.won": "Ganho", "deal.lost": "Perdido",
    "board.title": "Negócios", "board.funnel": "Funil", "board.noFunnels": "Nenhum funil ainda.", "board.dealsN": "{n} negócios",
    "followup.title": "Follow-ups", "followup.text": "Mensagem do follow-up", "followup.when": "Quando",
    "followup.inTime": "Daqui a", "followup.atTime": "Em data e hora", "followup.amount": "Quantos",
    "followup.unit": "Unidade", "followup.minutes": "minutos", "followup.hours": "horas", "followup.days": "dias",
    "followup.at": "Data e hora", "followup.pickTime": "Escolha data e hora.",
    "followup.cancelOnReply": "Cancelar se o cliente responder", "followup.businessHours": "Só em horário comercial",
    "followup.schedule": "Agendar follow-up", "followup.cancel": "Cancelar follow-up",
    "followup.PENDING": "Agendado", "followup.SENT": "Enviado", "followup.CANCELLED": "Cancelado", "followup.FAILED": "Falhou",
    "flows.title": "Fluxos", "flows.none": "Nenhum fluxo ainda.", "flows.pick": "Escolha um fluxo.", "flows.draft": "Rascunho",
    "flowStatus.draft": "Rascunho", "flowStatus.published": "Publicado", "flowStatus.archived": "Arquivado",
    "flows.published": "Versão {n} publicada.",
    "flows.version": "versão {n} no ar", "flows.publish": "Publicar rascunho", "flows.diagram": "Diagrama",
    "flows.diagramOf": "Diagrama do fluxo {name}", "flows.versionPick": "Versão", "flows.source": "Diagrama em texto",
    "flows.diagramUnavailable": "Não foi possível desenhar o diagrama.", "flows.simulate": "Simular",
    "flows.replies": "Respostas do cliente, uma por linha (uma linha com - simula falta de resposta)",
    "flows.repliesHint": "Maria\nmuitos\n12000", "flows.run": "Rodar simulação", "flows.outcome": "Resultado:",
    "flows.runs": "Execuções", "flows.noRuns": "Nenhuma execução ainda.", "flows.conversation": "Conversa",
    "flows.cancelRun": "Cancelar execução",
    "search.title": "Buscar mensagens", "search.query": "Palavras ou sentido", "search.mode": "Como",
    "search.hybrid": "Palavras e sentido", "search.keyword": "Palavras exatas", "search.semantic": "Sentido",
    "search.submit": "Buscar", "search.found": "{n} mensagens encontradas.",
    "board.more": "Há mais negócios nesta etapa.", "board.moveTo": "Mover {title} para",
    "board.moved": "{title} movido para {stage}",
  },
};

const KEY = "zapflow.lang";
export const LANGUAGES = Object.keys(STRINGS);
let current = pick();

function pick() {
  const saved = localStorage.getItem(KEY);
  if (saved && STRINGS[saved]) return saved;
  return (navigator.language || "en").toLowerCase().startsWith("pt") ? "pt" : "en";
}

export function lang() {
  return current;
}

export function setLang(code) {
  current = STRINGS[code] ? code : "en";
  localStorage.setItem(KEY, current);
  markDocument();
}

export function markDocument() {
  document.documentElement.lang = current === "pt" ? "pt-BR" : "en";
}

export function t(key, vars) {
  const text = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  return vars ? text.replace(/\{(\w+)\}/g, (_, name) => vars[name] ?? "") : text;
}
