/**
 * The hand-off from tiering to the catalog layer (sync/, the Iceberg issue): files
 * uploaded to warm are offered to the catalog, which answers which of them it has
 * committed; those become `committed` in the tier map (and so may be evicted).
 *
 * Contract for an implementation:
 * - `commit` may be called again with files it has already committed (after a crash
 *   between its commit and our `markCommitted`): it must recognise them (its own
 *   commit markers) and report them committed, never append them twice.
 * - It may commit fewer than offered (an outbox still waiting on the catalog); the
 *   rest is offered again on the next pass.
 * - `archived` re-points a table from the warm to the cold object (a replace commit);
 *   the warm object is deleted only after it resolves.
 * - `expired` removes the file from its table (a delete commit); the cold object is
 *   deleted only after it resolves.
 */
import type { TierRecord } from './tier-map.ts';

export interface CatalogHandoff {
  readonly name: string;
  /** Returns the ids of the offered files now committed. */
  commit(files: TierRecord[]): Promise<number[]>;
  /** The file now lives in cold at the same key; re-point the table before warm is deleted. */
  archived(file: TierRecord, coldStore: string): Promise<void>;
  /** The file leaves cold for good; remove it from the table before the object is deleted. */
  expired?(file: TierRecord): Promise<void>;
}

/** With no catalog configured: an uploaded file counts as committed; archiving needs no re-pointing. */
export const NO_CATALOG: CatalogHandoff = {
  name: 'none',
  commit: async (files) => files.map((f) => f.id),
  archived: async () => {},
};
