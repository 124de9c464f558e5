import { describe, expect, it } from 'vitest';
import { applyUpdates, failedRequirement, maxFieldId, newTableMetadata, UpdateRejected } from '../../../sync/iceberg/apply-updates.ts';
import type { TableMetadata } from '../../../sync/iceberg/metadata.ts';
import { append, BIG_ID, schema, snapshot, spec } from './fixtures.ts';

const NOW = 1_700_000_100_000;

function table(): TableMetadata {
  return newTableMetadata({ location: 'file:///w/iceberg/ns/t/', schema, spec, properties: { owner: 'lakeside' }, nowMs: NOW, tableUuid: '0a1b2c3d-0000-4000-8000-000000000001' });
}

describe('newTableMetadata', () => {
  it('is complete format-v2 metadata with no snapshot', () => {
    const m = table();
    expect(m).toMatchObject({
      'format-version': 2,
      location: 'file:///w/iceberg/ns/t',
      'last-sequence-number': 0,
      'last-column-id': 3,
      'current-schema-id': 0,
      'default-spec-id': 0,
      'last-partition-id': 1001,
      'default-sort-order-id': 0,
      'sort-orders': [{ 'order-id': 0, fields: [] }],
      refs: {},
      snapshots: [],
    });
    expect(m['current-snapshot-id']).toBeUndefined();
  });

  it('gives an unpartitioned table last-partition-id 999 (partition field ids start at 1000)', () => {
    expect(newTableMetadata({ location: 'x', schema, spec: { 'spec-id': 0, fields: [] }, properties: {}, nowMs: 1 })['last-partition-id']).toBe(999);
  });
});

describe('failedRequirement', () => {
  const m = applyUpdates(table(), append(BIG_ID, 1, null), { nowMs: NOW, baseLocation: null });

  it('passes when every requirement holds', () => {
    expect(
      failedRequirement(m, [
        { type: 'assert-table-uuid', uuid: '0A1B2C3D-0000-4000-8000-000000000001' },
        { type: 'assert-ref-snapshot-id', ref: 'main', 'snapshot-id': BIG_ID },
        { type: 'assert-ref-snapshot-id', ref: 'audit', 'snapshot-id': null },
        { type: 'assert-current-schema-id', 'current-schema-id': 0 },
        { type: 'assert-last-assigned-field-id', 'last-assigned-field-id': 3 },
        { type: 'assert-default-spec-id', 'default-spec-id': 0 },
      ]),
    ).toBeNull();
  });

  it.each([
    [{ type: 'assert-create' as const }, /already exists/],
    [{ type: 'assert-table-uuid' as const, uuid: 'ffffffff-0000-4000-8000-000000000001' }, /uuid/],
    [{ type: 'assert-ref-snapshot-id' as const, ref: 'main', 'snapshot-id': BIG_ID + 1n }, /ref main is at 9007199254740993/],
    [{ type: 'assert-ref-snapshot-id' as const, ref: 'main', 'snapshot-id': null }, /not no snapshot/],
    [{ type: 'assert-current-schema-id' as const, 'current-schema-id': 1 }, /current schema/],
    [{ type: 'assert-last-assigned-field-id' as const, 'last-assigned-field-id': 2 }, /last column id/],
    [{ type: 'assert-default-spec-id' as const, 'default-spec-id': 1 }, /default spec/],
  ])('reports %o as failed', (requirement, message) => {
    expect(failedRequirement(m, [requirement])).toMatch(message);
  });

  it('a null main ref matches a table without snapshots', () => {
    expect(failedRequirement(table(), [{ type: 'assert-ref-snapshot-id', ref: 'main', 'snapshot-id': null }])).toBeNull();
    expect(failedRequirement(table(), [{ type: 'assert-ref-snapshot-id', ref: 'main', 'snapshot-id': 5n }])).toMatch(/no snapshot/);
  });

  it('reads main from current-snapshot-id when refs is absent', () => {
    const legacy = { ...m, refs: undefined } as TableMetadata;
    expect(failedRequirement(legacy, [{ type: 'assert-ref-snapshot-id', ref: 'main', 'snapshot-id': BIG_ID }])).toBeNull();
  });
});

describe('applyUpdates', () => {
  it('an append adds the snapshot, moves main and current-snapshot-id, logs both, keeps the base untouched', () => {
    const base = table();
    const before = structuredClone(base);
    const next = applyUpdates(base, append(BIG_ID, 1, null), { nowMs: NOW + 5, baseLocation: 'file:///w/v1.metadata.json' });
    expect(base).toEqual(before);
    expect(next['last-sequence-number']).toBe(1);
    expect(next['current-snapshot-id']).toBe(BIG_ID);
    expect(next.refs).toEqual({ main: { 'snapshot-id': BIG_ID, type: 'branch' } });
    expect(next.snapshots!.map((s) => s['snapshot-id'])).toEqual([BIG_ID]);
    expect(next['snapshot-log']).toEqual([{ 'snapshot-id': BIG_ID, 'timestamp-ms': NOW + 5 }]);
    expect(next['metadata-log']).toEqual([{ 'metadata-file': 'file:///w/v1.metadata.json', 'timestamp-ms': NOW }]);
    expect(next['last-updated-ms']).toBe(NOW + 5);

    const second = applyUpdates(next, append(BIG_ID + 2n, 2, BIG_ID), { nowMs: NOW + 10, baseLocation: 'file:///w/v2.metadata.json' });
    expect(second.snapshots!.at(-1)!['parent-snapshot-id']).toBe(BIG_ID);
    expect(second['snapshot-log']).toHaveLength(2);
    expect(second['metadata-log']).toHaveLength(2);
  });

  it('last-updated-ms never goes back and covers the snapshot timestamps', () => {
    const base = table();
    const late = applyUpdates(base, [{ action: 'add-snapshot', snapshot: snapshot(1n, 1, null, NOW + 60_000) }], { nowMs: NOW - 1000, baseLocation: null });
    expect(late['last-updated-ms']).toBe(NOW + 60_000);
    const clockBack = applyUpdates(base, [{ action: 'set-properties', updates: { a: 'b' } }], { nowMs: NOW - 1000, baseLocation: null });
    expect(clockBack['last-updated-ms']).toBe(NOW);
  });

  it('rejects an add-snapshot whose sequence number is not above last-sequence-number', () => {
    const one = applyUpdates(table(), append(1n, 1, null), { nowMs: NOW, baseLocation: null });
    expect(() => applyUpdates(one, append(2n, 1, 1n), { nowMs: NOW, baseLocation: null })).toThrow(UpdateRejected);
    expect(() => applyUpdates(one, append(2n, 0, 1n), { nowMs: NOW, baseLocation: null })).toThrow(/not above/);
  });

  it('rejects a snapshot id that exists, and a ref to a snapshot that does not', () => {
    const one = applyUpdates(table(), append(1n, 1, null), { nowMs: NOW, baseLocation: null });
    expect(() => applyUpdates(one, append(1n, 2, 1n), { nowMs: NOW, baseLocation: null })).toThrow(/already exists/);
    expect(() => applyUpdates(one, [{ action: 'set-snapshot-ref', 'ref-name': 'main', type: 'branch', 'snapshot-id': 77n }], { nowMs: NOW, baseLocation: null })).toThrow(/no snapshot 77/);
  });

  it('a non-main ref leaves current-snapshot-id and the snapshot log alone', () => {
    const one = applyUpdates(table(), [{ action: 'add-snapshot', snapshot: snapshot(4n, 1, null) }, { action: 'set-snapshot-ref', 'ref-name': 'audit', type: 'branch', 'snapshot-id': 4n }], { nowMs: NOW, baseLocation: null });
    expect(one.refs!.audit!['snapshot-id']).toBe(4n);
    expect(one['current-snapshot-id']).toBeUndefined();
    expect(one['snapshot-log']).toEqual([]);
  });

  it('add-schema with set-current-schema -1 makes the added schema current and raises last-column-id', () => {
    const evolved = { ...schema, 'schema-id': 1, fields: [...schema.fields, { id: 4, name: 'unit', required: false, type: 'string' as const }] };
    const next = applyUpdates(table(), [{ action: 'add-schema', schema: evolved }, { action: 'set-current-schema', 'schema-id': -1 }], { nowMs: NOW, baseLocation: null });
    expect(next['current-schema-id']).toBe(1);
    expect(next.schemas.map((s) => s['schema-id'])).toEqual([0, 1]);
    expect(next['last-column-id']).toBe(4);
  });

  it('add-schema reuses an identical schema and renumbers a clashing id', () => {
    const same = applyUpdates(table(), [{ action: 'add-schema', schema: { ...schema, 'schema-id': 7 } }, { action: 'set-current-schema', 'schema-id': -1 }], { nowMs: NOW, baseLocation: null });
    expect(same.schemas).toHaveLength(1);
    expect(same['current-schema-id']).toBe(0);
    const clash = { ...schema, fields: [schema.fields[0]!] };
    const renumbered = applyUpdates(table(), [{ action: 'add-schema', schema: clash }], { nowMs: NOW, baseLocation: null });
    expect(renumbered.schemas.map((s) => s['schema-id'])).toEqual([0, 1]);
  });

  it('set-current-schema refuses an unknown id, and -1 without an added schema', () => {
    expect(() => applyUpdates(table(), [{ action: 'set-current-schema', 'schema-id': 3 }], { nowMs: NOW, baseLocation: null })).toThrow(/no schema with id 3/);
    expect(() => applyUpdates(table(), [{ action: 'set-current-schema', 'schema-id': -1 }], { nowMs: NOW, baseLocation: null })).toThrow(/no schema was added/);
  });

  it('set-properties merges', () => {
    const next = applyUpdates(table(), [{ action: 'set-properties', updates: { 'lakeside.agent': 'plant-7' } }], { nowMs: NOW, baseLocation: null });
    expect(next.properties).toEqual({ owner: 'lakeside', 'lakeside.agent': 'plant-7' });
  });

  it('refuses an update it does not know', () => {
    expect(() => applyUpdates(table(), [{ action: 'remove-snapshots' } as never], { nowMs: NOW, baseLocation: null })).toThrow(/unsupported update "remove-snapshots"/);
  });

  it('maxFieldId looks into nested types', () => {
    expect(maxFieldId([{ id: 1, name: 'a', required: true, type: { type: 'list', 'element-id': 9, element: 'int', 'element-required': true } }])).toBe(9);
  });
});
