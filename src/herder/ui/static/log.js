// A run's log on its page: stdout, stderr or both, streamed while the run runs (the API's
// follow=true answer, read as it arrives), with jump-to-end and download. The page keeps the
// last MAX characters; the download has the whole log.

import {url} from './api.js';
import {h, replace} from './dom.js';

const MAX = 2_000_000;
const STREAMS = [['output', 'stdout and stderr'], ['stdout', 'stdout'], ['stderr', 'stderr']];

export class LogView {
  constructor(runId, signal) {
    this.runId = runId;
    this.signal = signal;
    this.stream = 'output';
    this.done = false;
    this.reading = null;
    this.text = document.createTextNode('');
    this.pre = h('pre', {class: 'log', tabindex: '0', 'aria-label': 'log', 'aria-live': 'off'},
      this.text);
    this.state = h('span', {class: 'muted log-state', 'aria-live': 'polite'});
    this.follow = h('input', {type: 'checkbox', id: 'log-follow', checked: true});
    const choose = h('select', {id: 'log-stream', 'aria-label': 'stream'},
      STREAMS.map(([value, label]) => h('option', {value}, label)));
    choose.addEventListener('change', () => {
      this.stream = choose.value;
      this.load();
    });
    this.download = h('a', {class: 'button', download: ''}, 'Download');
    const end = h('button', {type: 'button'}, 'Jump to end');
    end.addEventListener('click', () => this.toEnd());
    this.el = h('div', {class: 'log-view'},
      h('div', {class: 'log-bar'}, choose,
        h('label', {for: 'log-follow', class: 'check'}, this.follow, ' follow'), end,
        this.download, this.state),
      this.pre);
  }

  start(run) {
    this.run = run;
    this.load();
  }

  update(run) {
    this.run = run;
  }

  toEnd() {
    this.pre.scrollTop = this.pre.scrollHeight;
    this.pre.scrollIntoView({block: 'end'});
  }

  async load() {
    if (this.reading) this.reading.abort();
    const reading = new AbortController();
    this.reading = reading;
    this.signal.addEventListener('abort', () => reading.abort());
    this.text.data = '';
    this.done = false;
    const file = url(`/runs/${this.runId}/logs`, {stream: this.stream});
    this.download.setAttribute('href', file.pathname + file.search);
    const live = !this.run.finished_at;
    replace(this.state, live ? 'following…' : '');
    try {
      const response = await fetch(url(`/runs/${this.runId}/logs`,
        {stream: this.stream, follow: live ? 'true' : null}),
      {credentials: 'same-origin', signal: reading.signal});
      if (!response.ok) throw new Error(`the log answered ${response.status}`);
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        this.append(decoder.decode(value, {stream: true}));
      }
      this.append(decoder.decode());
      this.done = true;
      replace(this.state, this.text.data ? '' : 'the log is empty');
      if (!this.text.data) this.pre.classList.add('empty-log');
      else this.pre.classList.remove('empty-log');
    } catch (error) {
      if (error.name !== 'AbortError') replace(this.state, `log unavailable: ${error.message}`);
    }
  }

  append(chunk) {
    if (!chunk) return;
    const atEnd = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 24;
    this.text.appendData(chunk);
    if (this.text.length > MAX) {
      this.text.deleteData(0, this.text.length - MAX);
      replace(this.state, 'earlier lines are left out here: download for the whole log');
    }
    this.pre.classList.remove('empty-log');
    if (this.follow.checked && atEnd) this.pre.scrollTop = this.pre.scrollHeight;
  }
}
