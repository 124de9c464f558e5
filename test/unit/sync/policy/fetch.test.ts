// Fetching the policy pair: a file (re-read and compared) and an HTTP server with ETags
// (If-None-Match → 304 means unchanged; no body moves), errors say whether to retry.
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { PolicyFetchError, PolicySource } from '../../../../sync/policy/fetch.ts';

const text = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8');

describe('PolicySource', () => {
  const dirs: string[] = [];
  const servers: Server[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  });

  it('reads a file:// pair and reports a change of either half only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'policy-fetch-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'policy.yaml'), 'version: 1\n');
    writeFileSync(join(dir, 'policy.yaml.sig'), 'sig-1');
    const source = new PolicySource({ url: pathToFileURL(join(dir, 'policy.yaml')).href });
    const first = await source.fetch();
    expect(first.changed).toBe(true);
    if (first.changed) expect([text(first.document), text(first.signature)]).toEqual(['version: 1\n', 'sig-1']);
    expect(await source.fetch()).toEqual({ changed: false });
    writeFileSync(join(dir, 'policy.yaml.sig'), 'sig-2'); // re-signed: the pair is new
    const resigned = await source.fetch();
    expect(resigned.changed && text(resigned.signature)).toBe('sig-2');
    writeFileSync(join(dir, 'policy.yaml'), 'version: 2\n');
    const second = await source.fetch();
    expect(second.changed && text(second.document)).toBe('version: 2\n');
    rmSync(join(dir, 'policy.yaml'));
    const error = await source.fetch().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PolicyFetchError);
    expect((error as PolicyFetchError).retriable).toBe(true);
  });

  it('sends If-None-Match over HTTP and treats 304 as unchanged', async () => {
    const files = new Map([
      ['/p.yaml', 'version: 1\n'],
      ['/p.yaml.sig', 'sig-1'],
    ]);
    const seen: { path: string; ifNoneMatch: string | undefined; status: number }[] = [];
    let failNext = false;
    const server = createServer((req, res) => {
      const body = files.get(req.url ?? '');
      if (failNext) {
        failNext = false;
        seen.push({ path: req.url!, ifNoneMatch: req.headers['if-none-match'], status: 503 });
        res.writeHead(503).end();
        return;
      }
      if (body === undefined) return res.writeHead(404).end();
      const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"`;
      const status = req.headers['if-none-match'] === etag ? 304 : 200;
      seen.push({ path: req.url!, ifNoneMatch: req.headers['if-none-match'], status });
      if (status === 304) return res.writeHead(304, { etag }).end();
      res.writeHead(200, { etag, 'content-type': 'application/yaml' }).end(body);
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const source = new PolicySource({ url: `http://127.0.0.1:${port}/p.yaml` });

    const first = await source.fetch();
    expect(first.changed && text(first.document)).toBe('version: 1\n');
    expect(await source.fetch()).toEqual({ changed: false });
    expect(seen.slice(2).map((s) => s.status)).toEqual([304, 304]);
    expect(seen[2]!.ifNoneMatch).toMatch(/^"[0-9a-f]{16}"$/);

    files.set('/p.yaml', 'version: 2\n');
    const second = await source.fetch();
    expect(second.changed && text(second.document)).toBe('version: 2\n');
    expect(second.changed && text(second.signature)).toBe('sig-1'); // unchanged half served from the cache

    failNext = true;
    const error = await source.fetch().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PolicyFetchError);
    expect((error as PolicyFetchError).retriable).toBe(true);
    expect((error as Error).message).toContain('HTTP 503');
    expect(await source.fetch()).toEqual({ changed: false });
  });
});
