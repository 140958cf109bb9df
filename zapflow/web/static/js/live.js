// The company's live events (/api/v1/stream) read with fetch, because EventSource cannot send the
// Authorization header and the key must stay out of URLs (a signed-in session's cookie goes by
// itself). Reconnects by itself with growing
// delays and resumes with Last-Event-ID, so the server replays what was missed.

const HEARTBEAT_TIMEOUT_MS = 45_000; // the server pings every 15 s
const MAX_BACKOFF_MS = 10_000;

export class LiveStream {
  constructor({ headers, onEvent, onState }) {
    this.headers = headers;
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastId = null;
    this.stopped = false;
    this.controller = null;
    this.wake = null;
    this.onOnline = () => this.wake?.();
    // an open stream may hang silently when the network goes: drop it and show we are retrying
    this.onOffline = () => this.controller?.abort();
  }

  start() {
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
    this.run();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    this.controller?.abort();
    this.wake?.();
  }

  async run() {
    let backoff = 500;
    let attempt = 0;
    while (!this.stopped) {
      this.onState(attempt ? "reconnecting" : "connecting");
      try {
        await this.connect(attempt > 0);
        backoff = 500;
      } catch (error) {
        if (error?.status === 401) return;
      }
      if (this.stopped) return;
      attempt += 1;
      this.onState("reconnecting");
      await new Promise((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, backoff + Math.random() * 250);
      });
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  }

  async connect(isRetry) {
    this.controller = new AbortController();
    const headers = { ...this.headers, Accept: "text/event-stream" };
    if (this.lastId) headers["Last-Event-ID"] = this.lastId;
    const response = await fetch("/api/v1/stream", {
      headers,
      signal: this.controller.signal,
      cache: "no-store",
    });
    if (response.status === 401) this.onState("unauthorized");
    if (!response.ok) throw Object.assign(new Error(`HTTP ${response.status}`), { status: response.status });
    // resumed: the server replays what was missed; otherwise views must reload what they show
    this.onState("live", { reconnected: isRetry, resumed: this.lastId != null });
    await this.read(response.body);
  }

  async read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = {};
    let watchdog;
    const arm = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => this.controller.abort(), HEARTBEAT_TIMEOUT_MS);
    };
    try {
      for (arm(); ; arm()) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let end;
        while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
          // a chunk may end between the \r and \n of one line break: wait for the rest
          if (buffer[end] === "\r" && end === buffer.length - 1) break;
          const line = buffer.slice(0, end);
          buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
          event = this.line(line, event);
        }
      }
    } finally {
      clearTimeout(watchdog);
    }
  }

  line(line, event) {
    if (line === "") {
      if (event.data !== undefined) {
        if (event.id) this.lastId = event.id;
        this.onEvent(JSON.parse(event.data));
      }
      return {};
    }
    if (line.startsWith(":")) return event;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "data") event.data = event.data === undefined ? value : `${event.data}\n${value}`;
    else event[name] = value;
    return event;
  }
}
