// A hot tier ready for merging: 3000 metrics rows from 14:40 to 16:20 (hours 14, 15,
// 16), landed, sealed and compacted into 10-minute windows; MID is a time when those
// hours are closed and their day is not.
import { expect } from 'vitest';
import type { Dataset, RowValue } from '../../../config/dataset.ts';
import { compactDataset } from '../../../agent/hot/compact.ts';
import { sealDataset } from '../../../agent/hot/seal.ts';
import { compactOptions, createFixture, LATER, MINUTE, sealOptions, T0, type Fixture } from './fixture.ts';
import { metricsConfig, metricsRows } from './rollup-fixture.ts';

export const HOUR = 60 * MINUTE;
/** 2026-11-21T18:40Z: the hours of the test rows (14:40–16:20) are closed, their day is not. */
export const MID = T0 + 4 * HOUR;

export function compactedMetrics(n = 3000): { fx: Fixture; metrics: Dataset; rows: RowValue[][] } {
  const fx = createFixture([metricsConfig]);
  const metrics = fx.datasets[0]!;
  const rows = metricsRows(n, T0, 2_000_000);
  fx.land(metrics, rows);
  sealDataset(fx.db, metrics, fx.stateDir, sealOptions);
  expect(compactDataset(fx.db, metrics, fx.stateDir, compactOptions, LATER).errors).toEqual([]);
  return { fx, metrics, rows };
}
