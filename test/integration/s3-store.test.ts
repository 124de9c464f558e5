// The object-store contract (test/support/object-store-contract.ts) on S3, against the
// real S3-compatible server of the services harness (versitygw): conditional create
// (If-None-Match), verify by the sha256 kept in metadata, server-checked SHA-256
// checksums, multipart above the threshold; and the credentials a config can name (a
// shared credentials file and profile, resolved secret references) or, naming none, the
// SDK's default chain (here: its environment variables).
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeadObjectCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeSchema } from '../../config/tiering-schema.ts';
import { s3ClientConfig, S3ObjectStore } from '../../tiering/stores/s3-store.ts';
import { startS3Server, type S3Server } from '../services/s3-server.ts';
import { TokenBucket } from '../../tiering/token-bucket.ts';
import { listKeys, localFile, objectStoreContract } from '../support/object-store-contract.ts';

const MIB = 1024 * 1024;
let server: S3Server;
let dir: string;
let prefixes = 0;

function storeConfig(extra: Record<string, unknown> = {}) {
  return storeSchema.parse({
    url: `s3://tiering-test/run${prefixes++}`,
    endpoint: server.endpoint,
    region: server.region,
    force_path_style: true,
    multipart_threshold_bytes: 6 * MIB,
    part_size_bytes: 5 * MIB,
    credentials: { access_key_id: '${env:UNUSED}', secret_access_key: '${env:UNUSED}' },
    ...extra,
  });
}

/** The config as the loader leaves it: secret references replaced by their values. */
function resolved(config: ReturnType<typeof storeConfig>) {
  return { ...config, credentials: { access_key_id: server.accessKeyId, secret_access_key: server.secretAccessKey } };
}

describe('S3 object store (versitygw)', () => {
  beforeAll(async () => {
    server = await startS3Server({ buckets: ['tiering-test'] });
    dir = await mkdtemp(join(tmpdir(), 'lakeside-s3-store-'));
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('contract', () => {
    objectStoreContract(() => new S3ObjectStore(resolved(storeConfig())), { multipartBytes: 12 * MIB });
  });

  it('keeps the sha256 as metadata, under the URL prefix', async () => {
    const config = resolved(storeConfig({ storage_class: 'STANDARD' }));
    const store = new S3ObjectStore(config);
    const source = localFile(randomBytes(1000));
    await store.put('a/b', source);
    const client = server.client();
    try {
      const head = await client.send(new HeadObjectCommand({ Bucket: 'tiering-test', Key: `${store.prefix}/a/b` }));
      expect(head.Metadata?.sha256).toBe(source.sha256);
    } finally {
      client.destroy();
    }
    expect(await listKeys(store, 'a/')).toEqual(['a/b']);
    await store.close();
  });

  it('sends the storage class on every object it creates: single puts, multipart uploads, a put\'s own class first', async () => {
    // versitygw keeps every object as STANDARD whatever it is sent, so the requests are what is checked.
    const config = resolved(storeConfig({ storage_class: 'GLACIER_IR' }));
    const client = new S3Client(s3ClientConfig(config));
    const sent: { command: string; storageClass: unknown }[] = [];
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { StorageClass?: unknown };
        if (['PutObjectCommand', 'CreateMultipartUploadCommand'].includes(context.commandName ?? '')) sent.push({ command: context.commandName!, storageClass: input.StorageClass });
        return next(args);
      },
      { step: 'initialize' },
    );
    const store = new S3ObjectStore(config, client);
    await store.put('sc/small', localFile(randomBytes(1000)));
    await store.put('sc/big', localFile(randomBytes(7 * MIB)));
    await store.put('sc/own', { ...localFile(randomBytes(1000)), storageClass: 'DEEP_ARCHIVE' });
    await store.putBytes('sc/bytes', randomBytes(100));
    expect(sent).toEqual([
      { command: 'PutObjectCommand', storageClass: 'GLACIER_IR' },
      { command: 'CreateMultipartUploadCommand', storageClass: 'GLACIER_IR' },
      { command: 'PutObjectCommand', storageClass: 'DEEP_ARCHIVE' },
      { command: 'PutObjectCommand', storageClass: 'GLACIER_IR' },
    ]);
    await store.close();
  });

  it('a multipart upload that fails half way leaves no object and no open upload', async () => {
    const store = new S3ObjectStore(resolved(storeConfig()));
    const source = localFile(randomBytes(13 * MIB));
    let sent = 0;
    await expect(
      store.put('m/broken', {
        ...source,
        throttle: (input) =>
          input.map((chunk: Buffer) => {
            sent += chunk.length;
            if (sent > 7 * MIB) throw new Error('disk read error after 7 MiB');
            return chunk;
          }),
      }),
    ).rejects.toThrow();
    expect(await store.head('m/broken')).toBeNull();
    const client = server.client();
    try {
      const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: 'tiering-test', Prefix: `${store.prefix}/m/` }));
      expect(uploads.Uploads ?? []).toEqual([]);
    } finally {
      client.destroy();
    }
    // The retry goes through whole.
    expect(await store.put('m/broken', source)).toMatchObject({ created: true, multipart: true });
    await store.close();
  });

  it('a capped upload whose source is destroyed mid-way (a stop) fails the put, not the process', async () => {
    const store = new S3ObjectStore(resolved(storeConfig()));
    const source = localFile(randomBytes(13 * MIB));
    let file: NodeJS.ReadableStream | undefined;
    const put = store.put('m/stopped', {
      ...source,
      throttle: (input) => {
        file = input;
        // Slow enough that the destroy lands between the SDK's reads of the body.
        return new TokenBucket(2 * MIB).throttle(input);
      },
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    (file as unknown as { destroy(error: Error): void }).destroy(new Error('tiering is stopping'));
    await expect(put).rejects.toThrow();
    expect(await store.head('m/stopped')).toBeNull();
    await store.close();
  });

  it('reads credentials from a shared credentials file and profile', async () => {
    const file = join(dir, 'credentials');
    writeFileSync(file, `[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[plant]\naws_access_key_id = ${server.accessKeyId}\naws_secret_access_key = ${server.secretAccessKey}\n`, { mode: 0o600 });
    const good = new S3ObjectStore(storeConfig({ credentials: { file, profile: 'plant' } }));
    expect((await good.put('c/x', localFile(randomBytes(10)))).created).toBe(true);
    await good.close();
    const bad = new S3ObjectStore(storeConfig({ credentials: { file } }));
    const error = await bad.put('c/y', localFile(randomBytes(10))).catch((e: unknown) => e as Error & { retriable: boolean });
    expect(error).toMatchObject({ retriable: false });
    expect(String((error as Error).message)).not.toContain(server.secretAccessKey);
    await bad.close();
  });

  it('without configured credentials, uses the SDK default chain (the AWS_* environment variables)', async () => {
    const names = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE'] as const;
    const saved = Object.fromEntries(names.map((n) => [n, process.env[n]]));
    const { credentials: _none, ...config } = storeConfig();
    try {
      delete process.env.AWS_SESSION_TOKEN;
      delete process.env.AWS_PROFILE;
      process.env.AWS_ACCESS_KEY_ID = server.accessKeyId;
      process.env.AWS_SECRET_ACCESS_KEY = server.secretAccessKey;
      const good = new S3ObjectStore(config);
      expect((await good.put('chain/x', localFile(randomBytes(10)))).created).toBe(true);
      await good.close();
      // The chain really is what signs: a wrong secret in the environment is refused.
      process.env.AWS_SECRET_ACCESS_KEY = 'not-the-secret';
      const bad = new S3ObjectStore(config);
      await expect(bad.put('chain/y', localFile(randomBytes(10)))).rejects.toMatchObject({ retriable: false });
      await bad.close();
    } finally {
      for (const n of names) {
        if (saved[n] === undefined) delete process.env[n];
        else process.env[n] = saved[n];
      }
    }
  });

  it('without checksums: no SHA-256 header, no trailers, same verify-by-metadata', async () => {
    const store = new S3ObjectStore(resolved(storeConfig({ checksums: false })));
    const source = localFile(randomBytes(2000));
    expect((await store.put('n/x', source)).created).toBe(true);
    expect((await store.put('n/x', source)).created).toBe(false);
    await store.close();
  });
});
