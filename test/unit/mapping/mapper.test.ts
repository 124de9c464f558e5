import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../config/loader.ts';
import { compileFolderMapping, compileMqttRoutes, QUARANTINE_PREFIX_BYTES, type MqttMapResult } from '../../../agent/mapping/mapper.ts';

const NOW_US = 1_732_190_000_000_000; // the message's arrival time
const NOW_MS = NOW_US / 1000;

const { config, datasets } = parseConfigText(
  `
plant: ulm
datasets:
  - name: readings
    time_column: ts
    max_future_skew_seconds: 300
    max_past_age_hours: 24
    columns:
      - { name: line, type: string, nullable: false }
      - { name: sensor, type: string, nullable: false }
      - { name: value, type: double, nullable: false }
      - { name: unit, type: string }
      - { name: seq, type: long }
      - { name: channel, type: int }
      - { name: ok, type: boolean }
      - { name: ingested_at, type: timestamp }
  - name: inspections
    time_column: ts
    columns:
      - { name: line, type: string, nullable: false }
      - { name: inspection_id, type: string, nullable: false }
      - { name: label, type: string }
      - { name: confidence, type: double }
      - { name: passed, type: boolean }
      - { name: site, type: string }
    dedupe_key: [line, inspection_id]
  - name: frames
    time_column: ts
    columns:
      - { name: line, type: string, nullable: false }
      - { name: camera, type: string, nullable: false }
      - { name: file_name, type: string }
      - { name: image, type: blob, nullable: false }
sources:
  mqtt:
    - name: broker
      url: mqtt://127.0.0.1:1883
      client_id: test
      max_payload_bytes: 10000
      routes:
        - filter: plant/+/line/+/inspection
          dataset: inspections
          fields:
            ts: { json: ts, format: iso8601 }
            line: { topic_level: 3 }
            inspection_id: { json: inspection_id }
            label: { json: "defects[0].label" }
            confidence: { json: "defects[0].confidence" }
            passed: { json: result.passed }
            site: { const: ulm }
        - filter: plant/+/line/+/camera/+
          dataset: frames
          payload: binary
          fields:
            ts: { received_at: true }
            line: { topic_level: 3 }
            camera: { topic_level: 5 }
            image: { payload: true }
        - filter: s/+/+/+
          dataset: readings
          fields:
            ts: { json: t, format: epoch_s }
            line: { topic_level: 1 }
            sensor: { topic_level: 2 }
            value: { json: v }
        - filter: us/+/+
          dataset: readings
          fields:
            ts: { json: t, format: epoch_us }
            line: { topic_level: 1 }
            sensor: { topic_level: 2 }
            value: { json: v }
        - filter: plant/+/line/+/sensor/+
          dataset: readings
          fields:
            ts: { json: ts, format: epoch_ms }
            line: { topic_level: 3 }
            sensor: { topic_level: 5 }
            value: { json: reading.value }
            unit: { json: reading.unit }
            seq: { json: seq }
            channel: { json: channel }
            ok: { json: ok }
            ingested_at: { received_at: true }
  folders:
    - name: cameras
      path: /srv/drop
      dataset: frames
      path_pattern: "{line}/{camera}/{file}"
      fields:
        ts: { file_mtime: true }
        line: { path_field: line }
        camera: { path_field: camera }
        file_name: { path_field: file }
        image: { payload: true }
`,
  '/etc/lakeside/test.yaml',
);

const mapper = compileMqttRoutes(config.sources.mqtt[0]!, datasets);
const SENSOR = 'plant/ulm/line/coating/sensor/humidity';

function map(topic: string, payload: string | Buffer, receivedAtUs = NOW_US): MqttMapResult {
  return mapper.map(topic, typeof payload === 'string' ? Buffer.from(payload) : payload, receivedAtUs);
}

function reading(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ ts: NOW_MS - 1000, reading: { value: 41.2, unit: '%' }, ...extra });
}

function row(result: MqttMapResult) {
  if (result.kind !== 'row') throw new Error(`expected a row, got ${JSON.stringify(result)}`);
  return result;
}

function refusal(result: MqttMapResult) {
  if (result.kind !== 'quarantine') throw new Error(`expected quarantine, got ${JSON.stringify(result)}`);
  return result.entry;
}

describe('MQTT mapping', () => {
  it('maps topic levels, JSON paths and received_at into aligned values', () => {
    const result = row(map(SENSOR, reading({ seq: 9_007_199_254_740_991, channel: 3, ok: true })));
    expect(result.row.dataset).toBe('readings');
    expect(result.row.values).toEqual([NOW_US - 1_000_000, 'coating', 'humidity', 41.2, '%', 9_007_199_254_740_991, 3, true, NOW_US]);
    expect(result.blobColumn).toBeNull();
  });

  it('leaves absent nullable columns null', () => {
    const result = row(map(SENSOR, JSON.stringify({ ts: NOW_MS, reading: { value: 1 } })));
    expect(result.row.values).toEqual([NOW_US, 'coating', 'humidity', 1, null, null, null, null, NOW_US]);
  });

  it('maps nested paths, ISO-8601 time and consts', () => {
    const payload = { ts: '2024-11-21T12:53:00+01:00', inspection_id: 'c3-1', defects: [{ label: 'scratch', confidence: 0.93 }], result: { passed: false } };
    const result = row(map('plant/ulm/line/coating/inspection', JSON.stringify(payload)));
    expect(result.row).toEqual({ dataset: 'inspections', values: [NOW_US - 20_000_000, 'coating', 'c3-1', 'scratch', 0.93, false, 'ulm'] });
  });

  it('reads each epoch unit', () => {
    expect(row(map('s/l1/temp/x', JSON.stringify({ t: NOW_US / 1e6 - 0.5, v: 1 }))).row.values[0]).toBe(NOW_US - 500_000);
    expect(row(map('s/l1/temp/x', JSON.stringify({ t: String(NOW_US / 1e6), v: 1 }))).row.values[0]).toBe(NOW_US);
    expect(row(map(SENSOR, JSON.stringify({ ts: NOW_MS - 0.25, reading: { value: 1 } }))).row.values[0]).toBe(NOW_US - 250);
    expect(row(map('us/l1/temp', JSON.stringify({ t: NOW_US - 7, v: 1 }))).row.values[0]).toBe(NOW_US - 7);
  });

  it('applies the coercion rules: numeric strings for numbers, numbers stringified for strings', () => {
    const result = row(map(SENSOR, JSON.stringify({ ts: String(NOW_MS), reading: { value: '41.5', unit: 7 }, seq: '12', channel: '-3', ok: 'false' })));
    expect(result.row.values.slice(0, 8)).toEqual([NOW_US, 'coating', 'humidity', 41.5, '7', 12, -3, false]);
  });

  it('keeps a binary payload for the caller as a blob', () => {
    const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]);
    const result = row(map('plant/ulm/line/coating/camera/cam1', jpeg));
    expect(result.row).toEqual({ dataset: 'frames', values: [NOW_US, 'coating', 'cam1', null, null] });
    expect(result.blobColumn).toBe(4);
    expect(result.contentType).toBe('image/jpeg');
  });

  it('says unrouted when no filter matches', () => {
    expect(map('other/topic', reading())).toEqual({ kind: 'unrouted' });
    expect(map('plant/ulm/line/coating/sensor', reading())).toEqual({ kind: 'unrouted' });
  });

  it('quarantines malformed JSON and non-objects while good messages keep flowing', () => {
    const bad = refusal(map(SENSOR, '{"ts": 1, "reading": '));
    expect(bad).toMatchObject({ source: 'broker', dataset: 'readings', reasonCode: 'malformed_json', coordinates: JSON.stringify({ topic: SENSOR }), receivedAtUs: NOW_US, payloadBytes: 21 });
    expect(bad.reason).toMatch(/^payload is not JSON: /);
    expect(Buffer.from(bad.payload).toString()).toBe('{"ts": 1, "reading": ');
    expect(refusal(map(SENSOR, '[1, 2]'))).toMatchObject({ reasonCode: 'not_an_object', reason: 'expected a JSON object, got [1,2]' });
    expect(refusal(map(SENSOR, '42'))).toMatchObject({ reasonCode: 'not_an_object' });
    expect(refusal(map(SENSOR, 'null'))).toMatchObject({ reasonCode: 'not_an_object' });
    expect(map(SENSOR, reading()).kind).toBe('row');
  });

  it('quarantines invalid UTF-8', () => {
    const bytes = Buffer.concat([Buffer.from('{"ts": 1, "x": "'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    expect(refusal(map(SENSOR, bytes))).toMatchObject({ reasonCode: 'invalid_utf8', reason: 'payload is not valid UTF-8', payloadBytes: bytes.length });
    expect(row(map(SENSOR, Buffer.from(reading({ reading: { value: 1, unit: '°C' } })))).row.values[4]).toBe('°C');
    // A UTF-8 byte order mark is tolerated.
    expect(map(SENSOR, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(reading())])).kind).toBe('row');
  });

  it('quarantines an oversized payload keeping only its first 4 KiB', () => {
    const big = Buffer.alloc(10_001, 0x20);
    const entry = refusal(map(SENSOR, big));
    expect(entry.reasonCode).toBe('payload_too_large');
    expect(entry.reason).toBe('payload of 10001 bytes is over max_payload_bytes (10000)');
    expect(entry.payload.byteLength).toBe(QUARANTINE_PREFIX_BYTES);
    expect(entry.payloadBytes).toBe(10_001);
    expect(map(SENSOR, reading()).kind).toBe('row');
  });

  it.each([
    [{ reading: { value: 'abc' } }, 'column "value" (json reading.value): expected a number, got "abc"'],
    [{ reading: { value: true } }, 'column "value" (json reading.value): expected a number, got true'],
    [{ reading: { value: 1, unit: { a: 1 } } }, 'column "unit" (json reading.unit): expected a string, got {"a":1}'],
    [{ channel: 2_147_483_648 }, 'column "channel" (json channel): expected a whole number in the 32-bit range, got 2147483648'],
    [{ channel: 1.5 }, 'column "channel" (json channel): expected a whole number in the 32-bit range, got 1.5'],
    [{ seq: 9_007_199_254_740_992 }, 'column "seq" (json seq): expected a whole number within ±2^53, got 9007199254740992'],
    [{ ok: 1 }, 'column "ok" (json ok): expected true or false, got 1'],
    [{ ok: 'yes' }, 'column "ok" (json ok): expected true or false, got "yes"'],
  ])('quarantines wrong types: %j', (extra, reason) => {
    expect(refusal(map(SENSOR, reading(extra)))).toMatchObject({ reasonCode: 'wrong_type', reason });
    expect(map(SENSOR, reading()).kind).toBe('row');
  });

  it('cuts long values short in the reason', () => {
    const entry = refusal(map(SENSOR, reading({ reading: { value: 'x'.repeat(500) } })));
    expect(entry.reason.length).toBeLessThan(150);
    expect(entry.reason.endsWith('…')).toBe(true);
  });

  it('quarantines a missing non-nullable field', () => {
    expect(refusal(map(SENSOR, JSON.stringify({ ts: NOW_MS, reading: {} })))).toMatchObject({
      reasonCode: 'missing_field',
      reason: 'column "value" (json reading.value): no value, and the column is not nullable',
    });
    expect(refusal(map(SENSOR, JSON.stringify({ reading: { value: 1 } })))).toMatchObject({ reasonCode: 'missing_field' });
    expect(refusal(map(SENSOR, JSON.stringify({ ts: NOW_MS, reading: { value: null } })))).toMatchObject({ reasonCode: 'missing_field' });
  });

  it('quarantines unparseable times', () => {
    expect(refusal(map(SENSOR, reading({ ts: 'soon' })))).toMatchObject({
      reasonCode: 'bad_time',
      reason: 'column "ts" (json ts): expected an epoch_ms time (not a decimal number), got "soon"',
    });
    const zoneless = JSON.stringify({ ts: '2024-11-21T12:53:00', inspection_id: 'x' });
    expect(refusal(map('plant/ulm/line/coating/inspection', zoneless)).reason).toMatch(/no time zone/);
    expect(map(SENSOR, reading()).kind).toBe('row');
  });

  it('quarantines event times beyond the skew or age bounds', () => {
    const future = refusal(map(SENSOR, reading({ ts: NOW_MS + 301_000 })));
    expect(future.reasonCode).toBe('time_out_of_bounds');
    expect(future.reason).toBe('event time 2024-11-21T11:58:21.000000Z is 5.0 min ahead of the agent clock (max_future_skew_seconds 300)');
    const past = refusal(map(SENSOR, reading({ ts: NOW_MS - 25 * 3_600_000 })));
    expect(past.reason).toMatch(/is 25\.0 h behind the agent clock \(max_past_age_hours 24\)$/);
    expect(refusal(map(SENSOR, reading({ ts: 1 }))).reasonCode).toBe('time_out_of_bounds'); // ms sent as s, say
    expect(map(SENSOR, reading({ ts: NOW_MS + 299_000 })).kind).toBe('row');
    expect(map(SENSOR, reading({ ts: NOW_MS - 23 * 3_600_000 })).kind).toBe('row');
  });
});

describe('folder mapping', () => {
  const folder = compileFolderMapping(config.sources.folders[0]!, datasets);
  const MTIME = NOW_US - 2_000_000;

  it('matches the path pattern', () => {
    expect(folder.match('coating/cam1/frame-001.jpg')).toEqual({ ok: true, fields: { line: 'coating', camera: 'cam1', file: 'frame-001.jpg' } });
    expect(folder.match('coating/frame-001.jpg')).toMatchObject({ ok: false, reasonCode: 'path_mismatch' });
    expect(folder.match('coating/cam1/sub/frame.jpg')).toMatchObject({ ok: false });
    expect(folder.match('coating/../cam1/frame.jpg')).toMatchObject({ ok: false, reason: expect.stringMatching(/"\.\."/) });
  });

  it('maps path fields and file mtime, leaving the blob to the caller', () => {
    const result = folder.map('coating/cam1/frame-001.jpg', NOW_US, MTIME);
    expect(result).toEqual({ kind: 'row', row: { dataset: 'frames', values: [MTIME, 'coating', 'cam1', 'frame-001.jpg', null] }, blobColumn: 4 });
    expect(folder.blobColumn).toBe(4);
  });

  it('refuses a path that does not match, and a stale file', () => {
    const mismatch = folder.map('stray.jpg', NOW_US, MTIME);
    expect(mismatch).toMatchObject({ kind: 'quarantine', entry: { reasonCode: 'path_mismatch', source: 'cameras', dataset: 'frames', coordinates: '{"path":"stray.jpg"}' } });
    const stale = folder.map('coating/cam1/old.jpg', NOW_US, NOW_US - 30 * 86_400_000_000);
    expect(stale).toMatchObject({ kind: 'quarantine', entry: { reasonCode: 'time_out_of_bounds' } });
  });

  it('supports placeholders inside a segment', () => {
    const custom = compileFolderMapping({ ...config.sources.folders[0]!, path_pattern: '{line}/{camera}_{file}' }, datasets);
    expect(custom.match('press/cam2_0001.png')).toEqual({ ok: true, fields: { line: 'press', camera: 'cam2', file: '0001.png' } });
  });
});
