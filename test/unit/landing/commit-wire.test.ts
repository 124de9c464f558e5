// The hand-off of a commit's items from the landing log to its writer
// (agent/landing/commit-wire.ts): through a real MessagePort with the buffers
// transferred, the writer gets back the items it would have got as objects.
import { describe, expect, it } from 'vitest';
import { resolveDataset } from '../../../config/dataset.ts';
import { datasetSchema } from '../../../config/schema.ts';
import { decodeCommit, decodeResults, encodeCommit, encodeResults, loweredOffsets } from '../../../agent/landing/commit-wire.ts';
import type { LandingItem, LandingItemResult } from '../../../agent/landing/types.ts';
import { throughPort } from '../../support/through-port.ts';

const readings = resolveDataset(
  datasetSchema.parse({
    name: 'readings',
    time_column: 'ts',
    columns: [
      { name: 'line', type: 'string' },
      { name: 'value', type: 'double' },
      { name: 'ok', type: 'boolean' },
    ],
  }),
);
const frames = resolveDataset(datasetSchema.parse({ name: 'frames', time_column: 'ts', columns: [{ name: 'image', type: 'blob' }] }));
const datasets = new Map([readings, frames].map((d) => [d.name, d]));

function viaPort(items: LandingItem[]): LandingItem[] {
  const { wire, transfer } = encodeCommit(items, datasets);
  return decodeCommit(throughPort(wire, transfer));
}

describe('commit wire', () => {
  it('gives back every item in order: rows of several datasets, coordinates, quarantine, blobs, source keys', () => {
    const quarantine = {
      source: 'm',
      coordinates: '{"topic":"a/b"}',
      dataset: 'readings',
      reasonCode: 'malformed_json',
      reason: 'payload is not JSON',
      payload: new Uint8Array([1, 2, 3]),
      payloadBytes: 3,
      receivedAtUs: 5,
    };
    const items: LandingItem[] = [
      { rows: [{ dataset: 'readings', values: [1, 'l1', 1.5, true] }], quarantine: [], blobs: [], source: 'k', sourceOffset: { source: 'k', stream: 't/0', offset: 2 ** 40 } },
      { rows: [], quarantine: [quarantine], blobs: [], source: 'm' },
      {
        rows: [
          { dataset: 'frames', values: [2, 'f'.repeat(64)] },
          { dataset: 'readings', values: [3, null, null, false] },
        ],
        quarantine: [],
        blobs: [{ sha256: 'f'.repeat(64), sizeBytes: 10, contentType: 'image/png' }],
        sourceKey: { source: 'cam', key: 'a.png:fff' },
      },
      { rows: [{ dataset: 'readings', values: [4, 7 as unknown as string, -0, null] }], quarantine: [], blobs: [], source: 'k', sourceOffset: { source: 'k', stream: 't/1', offset: 0 } },
      // With the stream's end when read (a Kafka batch's high watermark), 0 included.
      { rows: [{ dataset: 'readings', values: [5, 'l2', 2, true] }], quarantine: [], blobs: [], source: 'k', sourceOffset: { source: 'k', stream: 't/1', offset: 2 ** 40, logEnd: 2 ** 40 + 7 } },
      { rows: [], quarantine: [], blobs: [], source: 'k', sourceOffset: { source: 'k', stream: 't/2', offset: 0, logEnd: 0 } },
    ];
    const decoded = viaPort(items);
    expect(decoded).toEqual(items);
    expect(Object.is(decoded[3]!.rows[0]!.values[2], -0)).toBe(true);
    expect(decoded[1]!.quarantine[0]!.payload).toEqual(new Uint8Array([1, 2, 3]));
  });

  it('passes rows of an unknown dataset or the wrong width through as they are, for the writer to refuse', () => {
    const items: LandingItem[] = [
      { rows: [{ dataset: 'nope', values: [1, 'x'] }], quarantine: [], blobs: [] },
      { rows: [{ dataset: 'readings', values: [1, 'l1', 2] }], quarantine: [], blobs: [] },
      { rows: [{ dataset: 'readings', values: [1, 'l1', 2, true] }], quarantine: [], blobs: [] },
    ];
    const { wire } = encodeCommit(items, datasets);
    expect(wire.oddRows).toEqual([items[0]!.rows[0], items[1]!.rows[0]]);
    expect(wire.parts.map((p) => [p.dataset, p.rows])).toEqual([['readings', 1]]);
    expect(decodeCommit(wire)).toEqual(items);
  });

  it("gives back the writer's results per item", () => {
    const results: LandingItemResult[] = [
      { inserted: 3, duplicates: 1, sourceDuplicate: false, quarantined: 2 },
      { inserted: 0, duplicates: 0, sourceDuplicate: true, quarantined: 0 },
    ];
    const packed = encodeResults(results);
    expect(decodeResults(throughPort(packed, [packed.buffer as ArrayBuffer]))).toEqual(results);
  });

  it('gives back which items lowered their stream watermark (a recreated stream), and from where', () => {
    const results: LandingItemResult[] = [
      { inserted: 1, duplicates: 0, sourceDuplicate: false, quarantined: 0 },
      { inserted: 1, duplicates: 0, sourceDuplicate: false, quarantined: 0, offsetLoweredFrom: 2 ** 40 },
      { inserted: 0, duplicates: 0, sourceDuplicate: false, quarantined: 1, offsetLoweredFrom: 1 },
    ];
    const lowered = loweredOffsets(results);
    expect(lowered).toEqual([[1, 2 ** 40], [2, 1]]);
    const packed = encodeResults(results);
    expect(decodeResults(throughPort(packed, [packed.buffer as ArrayBuffer]), throughPort(lowered, []))).toStrictEqual(results);
    expect(loweredOffsets(results.slice(0, 1))).toBeUndefined();
  });
});
