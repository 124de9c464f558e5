import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { kafkaSourceSchema } from '../../../config/schema.ts';
import { silentLogger } from '../../../agent/log.ts';
import { kafkaClientConfig } from '../../../agent/sources/kafka-client.ts';

const base = { name: 'k', brokers: ['b1:9093'], group_id: 'g', routes: [{ topic: 't', dataset: 'd', fields: {} }] };

describe('kafkajs client settings', () => {
  it('TLS files are read; SCRAM credentials pass through', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kafka-client-'));
    writeFileSync(join(dir, 'ca.pem'), 'CA PEM');
    const config = kafkaSourceSchema.parse({
      ...base,
      tls: { ca_file: join(dir, 'ca.pem') },
      sasl: { mechanism: 'scram-sha-512', username: 'u', password: '${env:X}' },
    });
    config.sasl!.password = 'resolved-secret'; // as the loader leaves it
    const out = await kafkaClientConfig(config, silentLogger());
    expect(out.brokers).toEqual(['b1:9093']);
    expect(out.ssl).toEqual({ rejectUnauthorized: true, ca: ['CA PEM'] });
    expect(out.sasl).toEqual({ mechanism: 'scram-sha-512', username: 'u', password: 'resolved-secret' });
  });

  it('OAUTHBEARER hands kafkajs the token; no TLS means plaintext', async () => {
    const config = kafkaSourceSchema.parse({ ...base, sasl: { mechanism: 'oauthbearer', token: '${file:/t}' } });
    config.sasl!.token = 'header.payload.';
    const out = await kafkaClientConfig(config, silentLogger());
    expect(out.ssl).toBeUndefined();
    const sasl = out.sasl as { mechanism: string; oauthBearerProvider: () => Promise<{ value: string }> };
    expect(sasl.mechanism).toBe('oauthbearer');
    expect(await sasl.oauthBearerProvider()).toEqual({ value: 'header.payload.' });
  });
});
