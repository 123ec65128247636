// A client for OpenAI-compatible chat-completions endpoints (Node's fetch), used both for models
// under test and for the answer-extraction judge; and an append-only answer cache on disk, so an
// interrupted run resumes without asking anything twice.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Judge } from './extract.js';

export type ChatContent = string | ({ type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string } })[];
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: ChatContent;
}

export interface ChatClientOptions {
  /** The API root, e.g. http://127.0.0.1:8000/v1 (a URL ending in /chat/completions is used as is). */
  baseUrl: string;
  model: string;
  apiKey?: string;
  /** Per request (default 60 s). */
  timeoutMs?: number;
  /** Further attempts after a 429, a 5xx, a timeout, a dropped connection or a malformed reply (default 5). */
  retries?: number;
  /** First backoff; doubled each retry, capped by maxBackoffMs (defaults 1 s and 30 s). A Retry-After header is honoured up to the cap. */
  backoffMs?: number;
  maxBackoffMs?: number;
  temperature?: number;
  maxTokens?: number;
}

/** A request that failed for good: its URL and why. */
export class ChatError extends Error {
  constructor(message: string, readonly url: string, readonly status?: number, readonly unreachable = false) {
    super(message);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// Connection failures that mean nothing listens at the address: retrying only delays the error.
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ERR_INVALID_URL']);

function causeCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let depth = 0; cur && depth < 4; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

export class ChatClient {
  readonly url: string;
  readonly model: string;
  private readonly o: Required<Omit<ChatClientOptions, 'apiKey' | 'maxTokens'>> & Pick<ChatClientOptions, 'apiKey' | 'maxTokens'>;

  constructor(options: ChatClientOptions) {
    if (!options.baseUrl) throw new Error('chat endpoint: no base URL');
    if (!options.model) throw new Error('chat endpoint: no model name');
    const base = options.baseUrl.replace(/\/+$/, '');
    this.url = base.endsWith('/chat/completions') ? base : `${base}/chat/completions`;
    try {
      new URL(this.url);
    } catch {
      throw new Error(`chat endpoint: ${this.url} is not a valid URL`);
    }
    this.model = options.model;
    this.o = { timeoutMs: 60_000, retries: 5, backoffMs: 1000, maxBackoffMs: 30_000, temperature: 0, ...options };
  }

  /** The reply's text. Throws ChatError once the retries are spent, or at once for an unreachable host or a 4xx other than 429. */
  async complete(messages: ChatMessage[]): Promise<string> {
    const body = JSON.stringify({
      model: this.model, messages, temperature: this.o.temperature,
      ...(this.o.maxTokens !== undefined ? { max_tokens: this.o.maxTokens } : {}),
    });
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.o.apiKey) headers.authorization = `Bearer ${this.o.apiKey}`;
    let last = '';
    for (let attempt = 0; attempt <= this.o.retries; attempt++) {
      let wait = Math.min(this.o.backoffMs * 2 ** attempt, this.o.maxBackoffMs);
      try {
        const res = await fetch(this.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(this.o.timeoutMs) });
        const text = await res.text();
        if (res.status === 429 || res.status >= 500) {
          last = `HTTP ${res.status}: ${text.slice(0, 200)}`;
          const after = Number(res.headers.get('retry-after'));
          if (Number.isFinite(after) && after > 0) wait = Math.min(after * 1000, this.o.maxBackoffMs);
        } else if (!res.ok) {
          throw new ChatError(`${this.url}: HTTP ${res.status}: ${text.slice(0, 300)}`, this.url, res.status);
        } else {
          const content = parseReply(text);
          if (content !== null) return content;
          last = `malformed reply: ${text.slice(0, 200)}`;
        }
      } catch (e) {
        if (e instanceof ChatError) throw e;
        const code = causeCode(e);
        if (code && UNREACHABLE.has(code)) throw new ChatError(`${this.url}: unreachable (${code})`, this.url, undefined, true);
        const name = (e as Error).name;
        last = name === 'TimeoutError' || name === 'AbortError' ? `no reply within ${this.o.timeoutMs} ms` : `${(e as Error).message}${code ? ` (${code})` : ''}`;
      }
      if (attempt < this.o.retries) await sleep(wait);
    }
    throw new ChatError(`${this.url}: failed after ${this.o.retries + 1} attempts (${last})`, this.url);
  }
}

/** The first choice's message text of a chat-completions reply, or null when the reply is not one. */
export function parseReply(text: string): string | null {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  const content = (json as { choices?: { message?: { content?: unknown } }[] })?.choices?.[0]?.message?.content;
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    const parts = content.filter((p): p is { text: string } => typeof (p as { text?: unknown })?.text === 'string');
    if (parts.length) return parts.map((p) => p.text).join('');
  }
  return null;
}

/**
 * Answers on disk, one JSON object per line, appended and fsync'ed as each arrives. A line cut off
 * by an interruption is skipped on reading (and fenced off by a newline before the next append).
 */
export class AnswerCache {
  private readonly answers = new Map<string, string>();
  private fd: number | null = null;

  private constructor(readonly file: string) {}

  static open(file: string): AnswerCache {
    const cache = new AnswerCache(file);
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    if (fs.existsSync(file)) {
      const text = fs.readFileSync(file, 'utf8');
      for (const line of text.split('\n')) {
        if (!line.trim()) continue;
        try {
          const rec = JSON.parse(line) as { key?: unknown; answer?: unknown };
          if (typeof rec.key === 'string' && typeof rec.answer === 'string') cache.answers.set(rec.key, rec.answer);
        } catch {
          // an interrupted write: that answer is asked again
        }
      }
      if (text.length > 0 && !text.endsWith('\n')) fs.appendFileSync(file, '\n');
    }
    return cache;
  }

  get size(): number {
    return this.answers.size;
  }

  get(key: string): string | undefined {
    return this.answers.get(key);
  }

  /** Records an answer durably before returning. */
  put(key: string, answer: string, extra: Record<string, unknown> = {}): void {
    this.answers.set(key, answer);
    this.fd ??= fs.openSync(this.file, 'a');
    fs.writeSync(this.fd, `${JSON.stringify({ key, answer, ...extra })}\n`);
    fs.fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

export const sha256 = (...parts: (string | Uint8Array)[]): string => {
  const h = createHash('sha256');
  for (const p of parts) {
    h.update(p);
    h.update('\0');
  }
  return h.digest('hex');
};

/** VLMEvalKit's short names of OpenAI judges, resolved to the model names the API takes. */
export const JUDGE_ALIASES: Readonly<Record<string, string>> = {
  'gpt-4-turbo': 'gpt-4-1106-preview',
  'gpt-4-0613': 'gpt-4-0613',
  'gpt-4-0125': 'gpt-4-0125-preview',
  'gpt-4-0409': 'gpt-4-turbo-2024-04-09',
  'chatgpt-1106': 'gpt-3.5-turbo-1106',
  'chatgpt-0125': 'gpt-3.5-turbo-0125',
  'gpt-4o': 'gpt-4o-2024-05-13',
  'gpt-4o-0806': 'gpt-4o-2024-08-06',
  'gpt-4o-1120': 'gpt-4o-2024-11-20',
  'gpt-4o-mini': 'gpt-4o-mini-2024-07-18',
};

/**
 * The judge over a chat endpoint: the prompt as one user message. Replies are cached by
 * (model, prompt, attempt), so a resumed run asks nothing twice; a call that fails for good is
 * reported as null (one of the judge's tries), except an unreachable endpoint, which stops the run.
 */
export function chatJudge(client: ChatClient, cache?: AnswerCache): Judge {
  return {
    name: client.model,
    async ask(prompt: string, attempt: number): Promise<string | null> {
      const key = sha256('judge', client.model, prompt, String(attempt));
      const hit = cache?.get(key);
      if (hit !== undefined) return hit;
      try {
        const reply = await client.complete([{ role: 'user', content: prompt }]);
        cache?.put(key, reply, { attempt });
        return reply;
      } catch (e) {
        // A wrong address, key or model name would fail every question alike: stop instead.
        if (e instanceof ChatError && (e.unreachable || e.status === 401 || e.status === 403 || e.status === 404)) throw e;
        return null;
      }
    },
  };
}
