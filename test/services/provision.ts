// Provisions every test service's cache ahead of the integration tests:
// `node test/services/provision.ts` (npm run services:provision). Services also
// provision lazily on first use, but a cold download or build (minutes) does not belong
// inside a test's timeout, so CI runs this first, in a step of its own.
//
// Invariants:
// - Each provisioner is idempotent and quick once its cache entry exists.
// - Any failure exits non-zero after all provisioners ran: CI fails, nothing skips.
// - Adding a service is one line in `provisioners`.
import { findMosquitto } from './mosquitto.ts';
import { provisionIcebergRest } from './iceberg-rest.ts';
import { provisionKafka } from './kafka.ts';
import { provisionPyiceberg } from './pyiceberg.ts';
import { provisionVersitygw } from './s3-server.ts';
import { servicesCacheDir } from './service-cache.ts';

export interface Provisioner {
  name: string;
  /** Resolves with what was provisioned (a path, a class path) for the progress line. */
  provision: () => Promise<unknown>;
}

export const provisioners: Provisioner[] = [
  // Installed by .ci/run with apt-get; checked here so a missing broker fails early.
  { name: 'mosquitto', provision: async () => findMosquitto() },
  { name: 'Apache Kafka 4 (KRaft)', provision: provisionKafka },
  { name: 'versitygw (S3 server)', provision: provisionVersitygw },
  { name: 'Iceberg REST catalog fixture', provision: provisionIcebergRest },
  { name: 'PyIceberg', provision: provisionPyiceberg },
];

/** Runs the provisioners concurrently (downloads and builds overlap); returns the failures. */
export async function provisionAll(log: (line: string) => void = console.log): Promise<Array<{ name: string; error: Error }>> {
  log(`services cache: ${servicesCacheDir()}`);
  const started = Date.now();
  const results = await Promise.all(
    provisioners.map(async (p) => {
      const t0 = Date.now();
      log(`[${p.name}] provisioning…`);
      try {
        const what = await p.provision();
        log(`[${p.name}] ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${String(what)}`);
        return undefined;
      } catch (e) {
        log(`[${p.name}] FAILED after ${((Date.now() - t0) / 1000).toFixed(1)} s: ${(e as Error).message}`);
        return { name: p.name, error: e as Error };
      }
    }),
  );
  const failures = results.filter((r) => r !== undefined);
  log(`provisioning done in ${((Date.now() - started) / 1000).toFixed(1)} s, ${failures.length} failed`);
  return failures;
}

if (import.meta.main) {
  const failures = await provisionAll();
  if (failures.length > 0) {
    console.error(`provisioning failed: ${failures.map((f) => f.name).join(', ')}`);
    process.exit(1);
  }
}
