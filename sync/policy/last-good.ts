/**
 * The last good policy on disk, under `<state_dir>/policy/`:
 *   current.yaml, current.yaml.sig   the document and signature in force (bytes as fetched)
 *   state.json                       applied version, the last refusal, the last fetch
 *
 * Invariants:
 * - Every file appears whole (agent/fs-durable.ts: temp, fsync, rename, fsync dir).
 * - A new pair is first written whole as pending.yaml + pending.yaml.sig, then each is
 *   renamed over its current name. A crash anywhere leaves some pairing of the current
 *   and pending files that still verifies; `candidates()` lists every pairing present,
 *   newest first, and the caller keeps the first one the validator accepts. A stray
 *   half pair never verifies, so it can only be ignored, never applied.
 * - Nothing read from here is trusted: it is checked again (check.ts) before it applies.
 */
import { readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDirectory, writeFileDurably } from '../../agent/fs-durable.ts';

export interface PolicyRefusal {
  version: number | null;
  code: string;
  reason: string;
  at: string;
}

export interface PolicyState {
  applied: {
    version: number;
    applied_at: string;
    expires_at: string;
    warnings: string[];
    /** Per dataset, the hot tier's compaction window and target file size in force (when the agent applies them). */
    hot?: Record<string, { compaction_window_minutes: number; target_file_bytes: number | null }>;
  } | null;
  refused: PolicyRefusal | null;
  last_fetch: { at: string; ok: boolean; changed: boolean; error: string | null } | null;
}

export const EMPTY_STATE: PolicyState = { applied: null, refused: null, last_fetch: null };

export interface StoredPair {
  name: string;
  document: Uint8Array;
  signature: Uint8Array;
}

export class LastGoodStore {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'policy');
  }

  private path(name: string): string {
    return join(this.dir, name);
  }

  async readState(): Promise<PolicyState> {
    try {
      return { ...EMPTY_STATE, ...(JSON.parse(await readFile(this.path('state.json'), 'utf8')) as Partial<PolicyState>) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ...EMPTY_STATE };
      // A state file that does not parse: start clean (the pair is what matters, and it is re-verified).
      return { ...EMPTY_STATE };
    }
  }

  async writeState(state: PolicyState): Promise<void> {
    await writeFileDurably(this.path('state.json'), Buffer.from(`${JSON.stringify(state, null, 2)}\n`));
  }

  /** Makes `document` + `signature` the current pair (see the header). */
  async save(document: Uint8Array, signature: Uint8Array): Promise<void> {
    await writeFileDurably(this.path('pending.yaml'), document);
    await writeFileDurably(this.path('pending.yaml.sig'), signature);
    await rename(this.path('pending.yaml'), this.path('current.yaml'));
    await rename(this.path('pending.yaml.sig'), this.path('current.yaml.sig'));
    await fsyncDirectory(this.dir);
  }

  /** Every document/signature pairing on disk, the most likely newest first. */
  async candidates(): Promise<StoredPair[]> {
    const read = async (name: string): Promise<Uint8Array | null> => {
      try {
        return await readFile(this.path(name));
      } catch {
        return null;
      }
    };
    const docs = { pending: await read('pending.yaml'), current: await read('current.yaml') };
    const sigs = { pending: await read('pending.yaml.sig'), current: await read('current.yaml.sig') };
    const pairs: StoredPair[] = [];
    for (const [d, s] of [['pending', 'pending'], ['pending', 'current'], ['current', 'pending'], ['current', 'current']] as const) {
      const document = docs[d];
      const signature = sigs[s];
      if (document && signature) pairs.push({ name: `${d}.yaml + ${s}.yaml.sig`, document, signature });
    }
    return pairs;
  }

  /** Removes pending files once a pair has been chosen (and saved as current). */
  async clearPending(): Promise<void> {
    await unlink(this.path('pending.yaml')).catch(() => {});
    await unlink(this.path('pending.yaml.sig')).catch(() => {});
  }
}
