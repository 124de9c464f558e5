// The columnar hand-off of committed rows from the landing writer to the reads worker
// (agent/reads/landed-batch.ts): what is decoded is what was encoded, through a real
// MessagePort with the buffers transferred, for every column type and nulls.
import { describe, expect, it } from 'vitest';
import { resolveDataset } from '../../../config/dataset.ts';
import { datasetSchema } from '../../../config/schema.ts';
import type { LandingRow } from '../../../agent/landing/types.ts';
import { decodeLanded, encodeLanded } from '../../../agent/reads/landed-batch.ts';
import { throughPort } from '../../support/through-port.ts';

const all = resolveDataset(
  datasetSchema.parse({
    name: 'all',
    time_column: 'ts',
    columns: [
      { name: 's', type: 'string' },
      { name: 'i', type: 'int' },
      { name: 'l', type: 'long' },
      { name: 'd', type: 'double' },
      { name: 'b', type: 'boolean' },
      { name: 'img', type: 'blob' },
    ],
  }),
);
const other = resolveDataset(datasetSchema.parse({ name: 'other', time_column: 't', columns: [{ name: 'v', type: 'double' }] }));
const datasets = new Map([all, other].map((d) => [d.name, d]));

function viaPort(rows: LandingRow[]): LandingRow[] {
  const { batch, transfer } = encodeLanded(rows, datasets);
  return decodeLanded(throughPort(batch, transfer));
}

describe('landed batches', () => {
  it('round-trips every column type and nulls, grouped by dataset in arrival order', () => {
    const rows: LandingRow[] = [
      { dataset: 'all', values: [1_700_000_000_000_001, 'a', 1, 2 ** 40, 1.5, true, 'f'.repeat(64)] },
      { dataset: 'other', values: [5, 0.25] },
      { dataset: 'all', values: [1_700_000_000_000_002, null, null, null, null, null, null] },
      { dataset: 'all', values: [1_700_000_000_000_003, 'a', -7, 0, -0.5, false, 'e'.repeat(64)] },
      { dataset: 'other', values: [6, null] },
    ];
    expect(viaPort(rows)).toEqual([rows[0], rows[2], rows[3], rows[1], rows[4]]);
  });

  it('keeps a value of another kind than its column type (plain fallback) and leaves out unknown datasets', () => {
    const rows: LandingRow[] = [
      { dataset: 'all', values: [10, 7 as unknown as string, 'x' as unknown as number, 3, 1, 'yes' as unknown as boolean, null] },
      { dataset: 'all', values: [11, 's', 2, 3, 1, true, null] },
      { dataset: 'gone', values: [1, 2] },
    ];
    expect(viaPort(rows)).toEqual([rows[0], rows[1]]);
  });

  it('encodes a repeated string once per batch', () => {
    const rows: LandingRow[] = Array.from({ length: 100 }, (_, i) => ({ dataset: 'other', values: [i, i / 2] }));
    rows.push(...Array.from({ length: 100 }, (_, i) => ({ dataset: 'all', values: [i, i % 2 ? 'line_1' : 'line_2', i, i, i, true, null] })));
    const { batch } = encodeLanded(rows, datasets);
    const column = batch.parts.find((p) => p.dataset === 'all')!.columns[1]!;
    expect(column.kind === 'string' && column.dict).toEqual(['line_2', 'line_1']);
    expect(decodeLanded(batch)).toHaveLength(200);
  });
});
