import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { kafkaSourceSchema } from '../../../config/schema.ts';
import { resolveSecrets } from '../../../config/secrets.ts';
import { createLogger, silentLogger } from '../../../agent/log.ts';
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

  it('OAUTHBEARER re-reads a ${file:} token at each authentication, and keeps the last one if the file goes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kafka-client-'));
    const tokenFile = join(dir, 'kafka-token');
    writeFileSync(tokenFile, 'first.jwt.\n', { mode: 0o600 });
    const config = kafkaSourceSchema.parse({ ...base, sasl: { mechanism: 'oauthbearer', token: `\${file:${tokenFile}}` } });
    expect(resolveSecrets(config, { env: {}, baseDir: dir }).issues).toEqual([]); // as the loader resolves it
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk, _encoding, done) => (lines.push(String(chunk)), done()) });
    const out = await kafkaClientConfig(config, createLogger('warn', sink));
    const provider = (out.sasl as { oauthBearerProvider: () => Promise<{ value: string }> }).oauthBearerProvider;
    expect(await provider()).toEqual({ value: 'first.jwt.' });
    writeFileSync(tokenFile, 'rotated.jwt.\n'); // an OAuth client refreshed it
    expect(await provider()).toEqual({ value: 'rotated.jwt.' });
    rmSync(tokenFile);
    expect(await provider()).toEqual({ value: 'rotated.jwt.' });
    const warning = lines.join('');
    expect(warning).toContain(tokenFile);
    expect(warning).toContain('ENOENT');
    expect(warning).not.toContain('rotated.jwt');
    rmSync(dir, { recursive: true, force: true });
  });

  it('an ${env:} OAUTHBEARER token is the one read at start', async () => {
    const config = kafkaSourceSchema.parse({ ...base, sasl: { mechanism: 'oauthbearer', token: '${env:KAFKA_TOKEN}' } });
    resolveSecrets(config, { env: { KAFKA_TOKEN: 'env.jwt.' }, baseDir: '/' });
    const out = await kafkaClientConfig(config, silentLogger());
    const provider = (out.sasl as { oauthBearerProvider: () => Promise<{ value: string }> }).oauthBearerProvider;
    expect(await provider()).toEqual({ value: 'env.jwt.' });
    expect(await provider()).toEqual({ value: 'env.jwt.' });
  });
});
