/**
 * GET /v1/blobs/:sha256: a blob's bytes from local disk, or for a blob evicted after its
 * upload, from the warm/cold store through the read cache (tiering/read-cache.ts). Invariants: only an id of 64
 * lowercase hex characters ever reaches the file system (so no traversal, whatever the
 * encoding); a blob is immutable, so its sha256 is a strong ETag and the response may
 * be cached forever (privately: blobs can be plant images); the file is opened once
 * and streamed, size and bytes coming from the same open file.
 */
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { ApiErrorCode } from '../error-codes.ts';
import { ApiError } from '../errors.ts';
import type { BlobsPort } from '../ports.ts';
import { parseRange } from '../range.ts';

const BLOB_ID = /^[0-9a-f]{64}$/;
const CACHE_FOREVER = 'private, max-age=31536000, immutable';

/** If-None-Match holds `*` or our ETag (weak comparison, as RFC 9110 asks for it). */
function matchesETag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((candidate) => {
    const tag = candidate.trim().replace(/^W\//, '');
    return tag === '*' || tag === etag;
  });
}

async function openBlob(path: string, sha256: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ApiError(ApiErrorCode.blobNotFound, `blob ${sha256} is not on this agent`);
    }
    throw error;
  }
}

/** The local file, or (evicted from local disk) a copy fetched from warm/cold through the read cache. */
async function openBlobOrFetch(port: BlobsPort, sha256: string): Promise<FileHandle> {
  try {
    return await openBlob(port.blobPath(sha256), sha256);
  } catch (error) {
    if (!(error instanceof ApiError) || !port.fetchEvicted) throw error;
    const fetched = await port.fetchEvicted(sha256);
    if (!fetched) throw error;
    return openBlob(fetched, sha256);
  }
}

export function registerBlobRoute(app: FastifyInstance, port: BlobsPort): void {
  app.get<{ Params: { sha256: string } }>('/v1/blobs/:sha256', { config: { access: 'read' } }, async (request, reply) => {
    const { sha256 } = request.params;
    if (!BLOB_ID.test(sha256)) throw new ApiError(ApiErrorCode.badBlobId, 'a blob id is the sha256 of its content: 64 lowercase hex characters');
    const info = port.blobInfo(sha256);
    if (!info) throw new ApiError(ApiErrorCode.blobNotFound, `no blob ${sha256}`);
    const etag = `"${sha256}"`;
    reply.header('etag', etag).header('cache-control', CACHE_FOREVER).header('accept-ranges', 'bytes');
    if (matchesETag(request.headers['if-none-match'], etag)) return reply.code(304).send();

    const handle = await openBlobOrFetch(port, sha256);
    let size: number;
    try {
      size = (await handle.stat()).size;
    } catch (error) {
      await handle.close();
      throw error;
    }
    const ifRange = request.headers['if-range'];
    const range = ifRange === undefined || ifRange === etag ? parseRange(request.headers.range, size) : { kind: 'full' as const };
    if (range.kind === 'unsatisfiable') {
      await handle.close();
      throw new ApiError(ApiErrorCode.rangeNotSatisfiable, `range outside the blob's ${size} bytes`, {
        'content-range': `bytes */${size}`,
      });
    }
    const start = range.kind === 'partial' ? range.start : 0;
    const end = range.kind === 'partial' ? range.end : size - 1;
    reply.type(info.contentType ?? 'application/octet-stream').header('content-length', String(end - start + 1));
    if (range.kind === 'partial') reply.code(206).header('content-range', `bytes ${start}-${end}/${size}`);
    if (size === 0) {
      await handle.close();
      return reply.send(Buffer.alloc(0));
    }
    return reply.send(handle.createReadStream({ start, end, autoClose: true }));
  });
}
