/**
 * The feed-gap detector's learned cadences, kept across restarts.
 *
 * Why: a stream that went silent while the agent was down (an upgrade, a crash) never
 * sends again, so it would never show its cadence again and never alert: the very feed
 * gap the alerts exist for. With the cadences on disk, such a stream alerts k × cadence
 * after the restart.
 *
 * Format: `<state_dir>/alerts/cadences.json`, written atomically (atomic-file.ts):
 *   { "version": 1, "saved_at_ms": N, "streams": [
 *       { "dataset", "id", "key": {col: value}, "last_arrival_ms", "samples": [ms…], "sample_count" } ] }
 * `samples` are the inter-arrival samples in the detector's ring order.
 * A file that is missing gives no cadences; one that cannot be read or parsed gives
 * none either, with a warning: the detector learns again, as on a first start.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { mkdirDurable, writeFileAtomic } from '../hot/atomic-file.ts';
import type { CadenceRecord } from './feed-gap.ts';

const FORMAT_VERSION = 1;

const fileSchema = z.object({
  version: z.literal(FORMAT_VERSION),
  saved_at_ms: z.number(),
  streams: z.array(
    z.object({
      dataset: z.string(),
      id: z.string(),
      key: z.record(z.string(), z.string()),
      last_arrival_ms: z.number(),
      samples: z.array(z.number().nonnegative()),
      sample_count: z.number().int().nonnegative(),
    }),
  ),
});

export function cadenceFilePath(stateDir: string): string {
  return join(stateDir, 'alerts', 'cadences.json');
}

/** The saved cadences; [] when there is no file; throws (with the path) when it is unreadable. */
export function readCadences(path: string): CadenceRecord[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`${path}: ${(error as Error).message}`);
  }
  let parsed: z.infer<typeof fileSchema>;
  try {
    parsed = fileSchema.parse(JSON.parse(text));
  } catch (error) {
    throw new Error(`${path}: not a cadence file of version ${FORMAT_VERSION} (${(error as Error).message.split('\n')[0]})`);
  }
  return parsed.streams.map((s) => ({ dataset: s.dataset, id: s.id, key: s.key, lastArrivalMs: s.last_arrival_ms, samples: s.samples, sampleCount: s.sample_count }));
}

export function writeCadences(path: string, records: readonly CadenceRecord[], nowMs: number): void {
  mkdirDurable(dirname(path));
  const streams = records.map((r) => ({ dataset: r.dataset, id: r.id, key: r.key, last_arrival_ms: r.lastArrivalMs, samples: r.samples, sample_count: r.sampleCount }));
  writeFileAtomic(path, Buffer.from(JSON.stringify({ version: FORMAT_VERSION, saved_at_ms: nowMs, streams })));
}
