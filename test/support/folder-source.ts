// Shared set-up of the camera-folder source in unit tests (folder-source.test.ts,
// lifecycle/conformance.test.ts): the `frames` dataset, a landing log with small fast
// group commits, the `{line}/{camera}/{file}` folder config and the source built over them.
import { resolveDataset } from '../../config/dataset.ts';
import { datasetSchema, folderSourceSchema, type DatasetConfig, type FolderSourceConfig } from '../../config/schema.ts';
import type { BlobStore } from '../../agent/blobs/blob-store.ts';
import { LandingLog } from '../../agent/landing/landing-log.ts';
import { silentLogger } from '../../agent/log.ts';
import { FolderMapper } from '../../agent/mapping/mapper.ts';
import { FolderSource } from '../../agent/sources/folder-source.ts';

/** Camera frames: line and camera (from the path), optionally the file name, the image as a blob. */
export function framesDataset(opts: { fileColumn?: boolean } = {}): DatasetConfig {
  return datasetSchema.parse({
    name: 'frames',
    time_column: 'ts',
    columns: [
      { name: 'line', type: 'string', nullable: false },
      { name: 'camera', type: 'string', nullable: false },
      ...(opts.fileColumn ? [{ name: 'file', type: 'string' }] : []),
      { name: 'image', type: 'blob' },
    ],
  });
}

/** A landing log (not started) that commits small groups at once and retries fast. */
export function testLandingLog(dbPath: string, datasets: DatasetConfig[]): LandingLog {
  return new LandingLog({ dbPath, datasets, maxRows: 100, maxDelayMs: 1, retryInitialMs: 10, dedupeRetentionHours: 72, logger: silentLogger() });
}

/** Source `cams` on `path`, files at `{line}/{camera}/{file}`, fields mapped onto `dataset`'s columns. */
export function cameraFolderConfig(path: string, dataset: DatasetConfig, overrides: Partial<FolderSourceConfig> = {}): FolderSourceConfig {
  const hasFile = dataset.columns.some((c) => c.name === 'file');
  return folderSourceSchema.parse({
    name: 'cams',
    path,
    dataset: dataset.name,
    path_pattern: '{line}/{camera}/{file}',
    fields: {
      ts: { received_at: true },
      line: { path_field: 'line' },
      camera: { path_field: 'camera' },
      ...(hasFile ? { file: { path_field: 'file' } } : {}),
      image: { payload: true },
    },
    ...overrides,
  });
}

/** A folder source (not started) over `config`, mapping onto `dataset`. */
export function newFolderSource(config: FolderSourceConfig, dataset: DatasetConfig, landing: LandingLog, blobs: BlobStore): FolderSource {
  return new FolderSource({ config, mapper: new FolderMapper(config, [resolveDataset(dataset)]), landing, blobs, logger: silentLogger() });
}

/**
 * A daemon config (YAML) over the `frames` dataset (line, camera, image blob) and the
 * `cams` folder source on `drop`, with fast seals and the API on `apiPort` (0: a free one).
 */
export function framesDaemonConfigText(stateDir: string, drop: string, logLevel = 'fatal', apiPort = 0): string {
  return `
plant: p1
api: { listen_port: ${apiPort} }
state_dir: ${stateDir}
log_level: ${logLevel}
hot:
  seal_interval_ms: 100
datasets:
  - name: frames
    time_column: ts
    columns:
      - { name: line, type: string, nullable: false }
      - { name: camera, type: string, nullable: false }
      - { name: image, type: blob }
sources:
  folders:
    - name: cams
      path: ${drop}
      dataset: frames
      path_pattern: "{line}/{camera}/{file}"
      stable_ms: 100
      fields:
        ts: { received_at: true }
        line: { path_field: line }
        camera: { path_field: camera }
        image: { payload: true }
`;
}
