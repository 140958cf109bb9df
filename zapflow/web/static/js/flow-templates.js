// Starter flows for "new flow from template". Lead qualification is examples/flows/
// lead_qualification.yaml as JSON (tests/test_flow_editor.py checks they stay equal).

const text = (id, body, next) => ({ id, type: "send_text", text: body, next });

export const TEMPLATES = {
  lead_qualification: {
    doc: {
      name: "Lead qualification",
      description: "Greets a new lead, qualifies them by budget and routes them to sales or nurturing.",
      triggers: [{ type: "keyword", keywords: ["quote", "orçamento", "price"] }, { type: "first_message" }],
      variables: { threshold: 5000 },
      start: "greeting",
      nodes: [
        text("greeting", "Hi! I'm Acme's assistant. Two quick questions and I'll get you to the right person.", "ask_name"),
        { id: "ask_name", type: "ask", prompt: "What's your name?", variable: "name", timeout: "1d", on_timeout: "nudge", next: "save_name" },
        { id: "save_name", type: "update_contact", name: "{{name}}", next: "ask_budget", on_failure: "ask_budget" },
        {
          id: "ask_budget", type: "ask", prompt: "Nice to meet you, {{name}}! What's your monthly budget in BRL?", variable: "budget",
          validation: "number", retry_prompt: "Please answer with a number, like 3000.", max_retries: 2, on_invalid: "tell_handoff",
          timeout: "1d", on_timeout: "nudge", next: "check_budget",
        },
        { id: "check_budget", type: "condition", label: "budget >= threshold?", branches: [{ when: "budget >= threshold", next: "deal_qualified" }], default: "deal_nurture" },
        { id: "deal_qualified", type: "create_deal", title: "{{name}} (WhatsApp lead)", value: "budget", funnel: "Sales", stage: "Qualified", next: "tell_handoff", on_failure: "tell_handoff" },
        text("tell_handoff", "Thanks, {{name}}! A specialist will take it from here.", "handoff"),
        { id: "handoff", type: "handoff", team: "sales", note: "Lead {{name}}, budget {{budget}}", next: "done" },
        { id: "deal_nurture", type: "create_deal", title: "{{name}} (WhatsApp lead)", value: "budget", funnel: "Sales", stage: "Nurture", next: "thanks", on_failure: "thanks" },
        text("thanks", "Thanks, {{name}}! I'll send you our starter guide tomorrow.", "follow_up_wait"),
        { id: "follow_up_wait", type: "wait", duration: "1d", next: "follow_up" },
        text("follow_up", "Hi {{contact.name}}, here is the starter guide we promised: https://example.com/guide", "done"),
        text("nudge", "No rush! Reply here whenever you're ready.", "tag_cold"),
        { id: "tag_cold", type: "tag", tag: "cold-lead", next: "done", on_failure: "done" },
        { id: "done", type: "end" },
      ],
    },
  },
  appointment_booking: {
    doc: {
      name: "Appointment booking",
      description: "Offers time slots, books the chosen one and confirms it.",
      triggers: [{ type: "keyword", keywords: ["appointment", "book", "agendar"] }],
      start: "offer",
      nodes: [
        { id: "offer", type: "send_buttons", text: "When would you like to come in?", buttons: [{ id: "morning", title: "Morning" }, { id: "afternoon", title: "Afternoon" }, { id: "evening", title: "Evening" }], next: "ask_slot" },
        { id: "ask_slot", type: "ask", prompt: "Reply 1, 2 or 3.", variable: "slot", validation: "choice", choices: ["1", "2", "3"], retry_prompt: "Please reply 1, 2 or 3.", on_invalid: "handoff", timeout: "1d", on_timeout: "done", next: "ask_date" },
        { id: "ask_date", type: "ask", prompt: "Which day? (YYYY-MM-DD)", variable: "day", validation: "date", on_invalid: "handoff", next: "tag_booked" },
        { id: "tag_booked", type: "tag", tag: "appointment", next: "confirm", on_failure: "confirm" },
        text("confirm", "Booked: {{day}}, slot {{slot}}. See you then!", "done"),
        { id: "handoff", type: "handoff", team: "front-desk", note: "Could not book an appointment", next: "done" },
        { id: "done", type: "end" },
      ],
    },
  },
  order_status: {
    doc: {
      name: "Order status",
      description: "Looks an order up in the shop's API and tells the customer its status.",
      triggers: [{ type: "keyword", keywords: ["order", "pedido"] }],
      start: "ask_order",
      nodes: [
        { id: "ask_order", type: "ask", prompt: "What's your order number?", variable: "order", validation: "number", on_invalid: "handoff", next: "lookup" },
        { id: "lookup", type: "http_request", method: "GET", url: "https://shop.example.com/api/orders/{{order}}", timeout: "10s", retries: 2, save: { status: "json.status" }, next: "tell", on_failure: "sorry" },
        text("tell", "Order {{order}} is {{status}}.", "done"),
        text("sorry", "I couldn't look that order up right now; a person will help you.", "handoff"),
        { id: "handoff", type: "handoff", team: "support", note: "Order status for {{order}}", next: "done" },
        { id: "done", type: "end" },
      ],
    },
  },
  nps_survey: {
    doc: {
      name: "NPS survey",
      description: "Asks for a 0–10 score and follows detractors up with a person.",
      triggers: [{ type: "api" }],
      start: "ask_score",
      nodes: [
        { id: "ask_score", type: "ask", prompt: "From 0 to 10, how likely are you to recommend us?", variable: "score", validation: "number", timeout: "3d", on_timeout: "done", on_invalid: "done", next: "save_score" },
        { id: "save_score", type: "update_contact", custom_fields: { nps: "{{score}}" }, next: "route", on_failure: "route" },
        { id: "route", type: "condition", branches: [{ when: "score >= 9", next: "promoter" }, { when: "score <= 6", next: "detractor" }], default: "thanks" },
        text("promoter", "Thank you! Would you leave us a review? https://example.com/review", "done"),
        { id: "detractor", type: "ask", prompt: "Sorry to hear that. What could we do better?", variable: "feedback", timeout: "3d", on_timeout: "done", next: "handoff" },
        { id: "handoff", type: "handoff", team: "customer-success", note: "NPS {{score}}: {{feedback}}", next: "done" },
        text("thanks", "Thanks for your answer!", "done"),
        { id: "done", type: "end" },
      ],
    },
  },
  faq_ai: {
    doc: {
      name: "FAQ with AI fallback",
      description: "Answers the common questions from a menu; anything else goes to the AI, then a person.",
      triggers: [{ type: "first_message" }],
      start: "menu",
      nodes: [
        { id: "menu", type: "send_list", text: "How can I help?", button: "Topics", items: [{ id: "hours", title: "Opening hours" }, { id: "prices", title: "Prices" }, { id: "other", title: "Something else" }], next: "ask_topic" },
        { id: "ask_topic", type: "ask", prompt: "Reply 1, 2 or 3.", variable: "topic", validation: "choice", choices: ["1", "2", "3"], on_invalid: "ai", timeout: "1h", on_timeout: "done", next: "route" },
        { id: "route", type: "condition", branches: [{ when: "topic == '1'", next: "hours" }, { when: "topic == '2'", next: "prices" }], default: "ai" },
        text("hours", "We're open Monday to Saturday, 9:00–18:00.", "done"),
        text("prices", "Our price list: https://example.com/prices", "done"),
        { id: "ai", type: "ai_reply", instructions: "Answer briefly from the company's knowledge; say so when you don't know.", next: "done", on_failure: "handoff" },
        { id: "handoff", type: "handoff", team: "support", next: "done" },
        { id: "done", type: "end" },
      ],
    },
  },
};
