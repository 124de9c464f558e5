/**
 * A row's dedupe key (`dedupe_keys.key`, landing/schema.ts): the JSON of its key
 * columns' values as the sources hand them over. JSON keeps types apart ("1" vs 1) and
 * is unambiguous about separators. A row read back from its landed table has booleans
 * as 0/1 (SQLite has none): `dedupeKeyOfStored` turns them back first, so a key can be
 * found again from the stored row (landing/source-holds.ts, when a held row is dropped).
 * Strings are keyed well-formed (a lone surrogate as U+FFFD), as SQLite stores them.
 */
import type { Dataset, RowValue } from '../../config/dataset.ts';

function keyValue(value: unknown): unknown {
  return typeof value === 'string' ? value.toWellFormed() : (value ?? null);
}

export function dedupeKeyOf(dataset: Dataset, values: readonly unknown[]): string {
  return JSON.stringify(dataset.dedupeKey!.map((i) => keyValue(values[i])));
}

/** The key of a row as stored in `landed_<dataset>` (column order of the dataset). */
export function dedupeKeyOfStored(dataset: Dataset, stored: readonly RowValue[]): string {
  return JSON.stringify(
    dataset.dedupeKey!.map((i) => {
      const value = stored[i] ?? null;
      return dataset.columns[i]!.type === 'boolean' && value !== null ? value === 1 || value === true : keyValue(value);
    }),
  );
}
