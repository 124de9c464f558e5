/**
 * The handover history a partition's offset commits carry, and what it says about a
 * held batch (landing/source-holds.ts): was its offset commit made, or will the
 * partition's next reader land it again?
 *
 * Format (the commit's `metadata` string; Kafka keeps it with the offset, up to
 * `offset.metadata.max.bytes`, 4096 by default): `lakeside1 <tenure>:<since> ...`, the
 * partition's last `HISTORY_LIMIT` tenures, oldest first. A tenure is one agent's
 * ownership of the partition (a random id); `since` is the committed offset it started
 * reading from (-1: none). Every commit carries the whole history, its own tenure last.
 *
 * Why it decides: a tenure appears in the history from its first commit on, and the
 * coordinator refuses commits from an ended generation, so a tenure's commits all come
 * before its successor's first read; and a partition's offsets only move forward. For
 * a batch held by tenure T, covering offsets first..next-1, Kafka still holding `first`
 * (the partition's low watermark is not above it):
 * - T in the history: take b, T's successor's `since` or, while T is last, the
 *   committed offset. b >= next: T committed the batch: keep it. 0 <= b <= first: T
 *   never committed it, and whoever reads the partition reads it from b: drop it (and
 *   lower the watermark).
 * - T not in the history: T never committed anything, or the history lost it (pushed
 *   out of a full history, or wiped by a commit without metadata, such as an offset
 *   reset). Either way every tenure still recorded came after T. If one of them started
 *   reading at or before `first` (0 <= since <= first), it read the batch: drop it. With
 *   no history at all, a committed offset at or before `first` says the same.
 * - "Reads from b" needs Kafka to still hold b: a reader whose offset is gone (or a
 *   sentinel, -1/-2) starts at the latest offset, or with `from_beginning` at the
 *   earliest, which reads the batch if Kafka still holds it.
 * - Anything else keeps the batch, at least once (logged): a reader that started from
 *   the latest offset, a boundary inside the batch (an offset reset by hand), no
 *   recorded reader at or before the batch, records already deleted by retention.
 * - Not covered: a commit answered with an error (a timeout during a coordinator
 *   failover) and applied later, after this agent settled against the older offset
 *   while no successor had committed yet: the batch is dropped and the successor may
 *   start past it. A tenure's `since` is the first offset it actually read, so once a
 *   successor has committed, its history tells the truth.
 */
import { randomBytes } from 'node:crypto';

/** Tenures a history keeps (about 1 KB); older ones go first. */
export const HISTORY_LIMIT = 32;
const PREFIX = 'lakeside1';

export interface Tenure {
  id: string;
  since: number;
}

export type HoldVerdict = 'keep' | 'drop' | 'unknown';

export function newTenureId(): string {
  return randomBytes(6).toString('base64url');
}

/** The history in a commit's metadata; [] for none or a foreign format. */
export function parseHistory(metadata: string | null | undefined): Tenure[] {
  if (!metadata?.startsWith(`${PREFIX} `)) return [];
  const tenures: Tenure[] = [];
  for (const entry of metadata.slice(PREFIX.length + 1).split(' ')) {
    const at = entry.lastIndexOf(':');
    const since = Number(entry.slice(at + 1));
    if (at <= 0 || !Number.isSafeInteger(since)) return [];
    tenures.push({ id: entry.slice(0, at), since });
  }
  return tenures;
}

export function formatHistory(history: readonly Tenure[]): string {
  return `${PREFIX} ${history.map((t) => `${t.id}:${t.since}`).join(' ')}`;
}

/**
 * The history this member commits with after taking the partition: the committed one,
 * continued when its last tenure is `current` (the partition stayed with this agent),
 * else extended by a new tenure starting at the committed offset.
 */
export function takeOver(committed: readonly Tenure[], committedOffset: number, current: string | undefined): Tenure[] {
  if (current !== undefined && committed.at(-1)?.id === current) return [...committed];
  return [...committed, { id: newTenureId(), since: committedOffset }].slice(-HISTORY_LIMIT);
}

/**
 * See the header. `committedOffset` -1: nothing committed; `lowWatermark`: the
 * partition's first offset still held by Kafka; `fromBeginning`: the group's readers
 * start a partition with no (or a lost) committed offset at the earliest offset.
 */
export function judgeHold(
  hold: { tenure: string; firstOffset: number; nextOffset: number },
  history: readonly Tenure[],
  committedOffset: number,
  lowWatermark: number,
  fromBeginning: boolean,
): HoldVerdict {
  // A reader starting at `offset` reads the batch: it starts at or before it, Kafka still
  // holds the batch, and either still holds `offset` or resets a lost (or sentinel) offset to the earliest.
  const readFrom = (offset: number): boolean =>
    offset <= hold.firstOffset && lowWatermark <= hold.firstOffset && ((offset >= 0 && offset >= lowWatermark) || fromBeginning);
  const at = history.findIndex((t) => t.id === hold.tenure);
  if (at < 0) {
    const readAgain = history.length > 0 ? history.some((t) => readFrom(t.since)) : readFrom(committedOffset);
    return readAgain ? 'drop' : 'unknown';
  }
  const boundary = at + 1 < history.length ? history[at + 1]!.since : committedOffset;
  if (boundary >= hold.nextOffset) return 'keep';
  return readFrom(boundary) ? 'drop' : 'unknown';
}
