/**
 * The safety checks a policy must pass before it applies (issue 7, item 4).
 *
 * Rules (each refusal is POLICY_UNSAFE, naming plant, dataset and field):
 * - Floors: a retention the document sets under the agent's floors (hot hours, warm
 *   days, cold days) needs `allow_short_retention: true` in the document. A `null` warm
 *   (never to cold) or cold (kept for ever) retention is never short.
 * - No policy may delete uncommitted data. Eviction, archiving and expiry only ever
 *   touch files whose tier-map state is committed or later (tiering/evictor.ts,
 *   archiver.ts); a policy changes *when* those run, never that condition, so a
 *   retention can only delete data the catalog already holds. The one setting that
 *   deletes uncommitted files is `overflow: drop_oldest`: a policy may not turn it on
 *   (no flag overrides this); only the plant's own config file can choose it, and a
 *   policy may then keep it or narrow it back to `keep`.
 * - A cold retention not longer than the warm retention is refused: data would be
 *   deleted from cold as soon as it arrived there (almost certainly a unit mistake).
 * - A compaction_window_minutes that does not divide a day (1440 % minutes !== 0) is
 *   refused, not clamped: a window would span two UTC days, and a file must hold rows
 *   of one day (the Iceberg day partition; agent/hot/dataset-settings.ts). Refusing
 *   keeps the window the centre asked for or none: a silently different window would
 *   change file sizes and the delay to the centre behind the centre's back.
 *
 * Invariant: checks look at the values the document itself sets for this plant
 * (resolve.ts `documentDatasetPolicy`); the config file's own values are the local
 * operator's choice and are not second-guessed here.
 */
import type { EffectivePolicy, PolicyDocument } from '../../config/policy-schema.ts';
import { windowProblem } from '../../agent/hot/dataset-settings.ts';
import { documentDatasetPolicy } from './resolve.ts';

export interface RetentionFloors {
  hot_retention_hours: number;
  warm_retention_days: number;
  cold_retention_days: number;
}

/** The first safety problem of `effective` (resolved from `doc` for `plant`), or null. */
export function safetyProblem(doc: PolicyDocument, plant: string, effective: EffectivePolicy, baseOverflow: (dataset: string) => 'keep' | 'drop_oldest', floors: RetentionFloors): string | null {
  for (const [dataset, resolved] of Object.entries(effective.datasets)) {
    const own = documentDatasetPolicy(doc, plant, dataset);
    const where = `plant ${plant}, dataset ${dataset}`;
    if (own.overflow === 'drop_oldest' && baseOverflow(dataset) !== 'drop_oldest') {
      return `${where}: overflow: drop_oldest would let the policy delete uncommitted data; only the plant's config file may choose it`;
    }
    if (!doc.allow_short_retention) {
      const short: [string, number | null | undefined, number, string][] = [
        ['hot_retention_hours', own.hot_retention_hours, floors.hot_retention_hours, 'h'],
        ['warm_retention_days', own.warm_retention_days, floors.warm_retention_days, ' days'],
        ['cold_retention_days', own.cold_retention_days, floors.cold_retention_days, ' days'],
      ];
      for (const [field, value, floor, unit] of short) {
        if (typeof value === 'number' && value < floor) {
          return `${where}: ${field} ${value}${unit} is under this plant's floor of ${floor}${unit} (set allow_short_retention: true in the document to allow it)`;
        }
      }
    }
    if (own.compaction_window_minutes !== undefined) {
      const problem = windowProblem(own.compaction_window_minutes);
      if (problem) return `${where}: ${problem}`;
    }
    const setsTiers = own.warm_retention_days !== undefined || own.cold_retention_days !== undefined;
    if (setsTiers && resolved.warm_retention_days !== null && resolved.cold_retention_days !== null && resolved.cold_retention_days <= resolved.warm_retention_days) {
      return `${where}: cold_retention_days ${resolved.cold_retention_days} is not longer than warm_retention_days ${resolved.warm_retention_days}: data would be deleted from cold as soon as it is archived`;
    }
  }
  return null;
}
