// A virtualized vertical list of items of varying height: only the rows in (and near) the
// viewport exist in the DOM, so a thread of 10,000 messages scrolls like one of 50. Heights are
// measured once rendered; items are positioned absolutely from cumulative offsets.

const OVERSCAN_PX = 600;

export class VirtualList {
  constructor(scroller, { render, key, estimate = 72 }) {
    this.scroller = scroller;
    this.render = render;
    this.key = key;
    this.estimate = estimate;
    this.items = [];
    this.heights = new Map();
    this.nodes = new Map();
    this.offsets = [0];
    this.dirty = true;
    this.canvas = document.createElement("div");
    this.canvas.className = "vlist-canvas";
    scroller.append(this.canvas);
    this.frame = 0;
    scroller.addEventListener("scroll", () => this.schedule(), { passive: true });
    this.width = 0;
    this.resizer = new ResizeObserver(() => {
      // a new width rewraps every row: measure again
      if (scroller.clientWidth === this.width) return this.schedule();
      this.width = scroller.clientWidth;
      this.heights.clear();
      this.nodes.forEach((node) => node.remove());
      this.nodes.clear();
      this.dirty = true;
      this.schedule();
    });
    this.resizer.observe(scroller);
  }

  destroy() {
    this.resizer.disconnect();
    cancelAnimationFrame(this.frame);
  }

  get atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
  }

  setItems(items) {
    this.items = items;
    this.dirty = true;
    this.nodes.forEach((node) => node.remove());
    this.nodes.clear();
    this.layout();
    this.scrollToBottom();
  }

  // Older items above: keep what the reader is looking at in place.
  prepend(items) {
    if (!items.length) return;
    const before = this.scroller.scrollTop;
    const oldHeight = this.total();
    this.items = items.concat(this.items);
    this.dirty = true;
    this.layout();
    this.scroller.scrollTop = before + (this.total() - oldHeight);
    this.layout();
  }

  append(item) {
    const stick = this.atBottom;
    this.items.push(item);
    this.dirty = true;
    this.layout();
    if (stick) this.scrollToBottom();
  }

  // Re-render one item (e.g. its delivery status changed), if it is on screen.
  refresh(key) {
    const node = this.nodes.get(key);
    if (!node) return;
    const index = this.items.findIndex((item) => this.key(item) === key);
    node.remove();
    this.nodes.delete(key);
    if (index >= 0) this.layout();
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.layout();
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.layout();
    });
  }

  total() {
    this.computeOffsets();
    return this.offsets[this.items.length];
  }

  computeOffsets() {
    if (!this.dirty) return;
    const offsets = new Array(this.items.length + 1);
    offsets[0] = 0;
    for (let i = 0; i < this.items.length; i++) {
      const h = this.heights.get(this.key(this.items[i])) ?? this.estimate;
      offsets[i + 1] = offsets[i] + h;
    }
    this.offsets = offsets;
    this.dirty = false;
  }

  // The first index whose bottom edge is below y.
  indexAt(y) {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.offsets[mid + 1] <= y) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  layout() {
    for (let pass = 0; pass < 3; pass++) {
      if (!this.layoutOnce()) break;
    }
  }

  // Renders the visible window; returns true when measuring changed heights (layout again).
  layoutOnce() {
    this.computeOffsets();
    const top = this.scroller.scrollTop;
    const start = this.indexAt(Math.max(0, top - OVERSCAN_PX));
    const end = Math.min(
      this.items.length,
      this.indexAt(top + this.scroller.clientHeight + OVERSCAN_PX) + 1,
    );
    const wanted = new Set();
    for (let i = start; i < end; i++) wanted.add(this.key(this.items[i]));
    for (const [key, node] of this.nodes) {
      if (!wanted.has(key)) {
        node.remove();
        this.nodes.delete(key);
      }
    }
    this.canvas.style.height = `${this.offsets[this.items.length]}px`;
    const fresh = [];
    for (let i = start; i < end; i++) {
      const item = this.items[i];
      const key = this.key(item);
      let node = this.nodes.get(key);
      if (!node) {
        node = this.render(item);
        node.classList.add("vlist-row");
        this.nodes.set(key, node);
        this.canvas.append(node);
        fresh.push([i, key, node]);
      }
      node.style.transform = `translateY(${this.offsets[i]}px)`;
    }
    let shiftAbove = 0;
    let changed = false;
    const firstVisible = this.indexAt(top);
    for (const [i, key, node] of fresh) {
      const measured = node.offsetHeight;
      const known = this.heights.get(key) ?? this.estimate;
      if (measured !== known) {
        this.heights.set(key, measured);
        if (i < firstVisible) shiftAbove += measured - known;
        changed = true;
      }
    }
    if (changed) {
      this.dirty = true;
      // rows above the viewport grew or shrank: move the scroll position with them
      if (shiftAbove) this.scroller.scrollTop = top + shiftAbove;
    }
    return changed;
  }
}
