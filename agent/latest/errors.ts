/**
 * Typed errors of the latest-value cache, with stable codes the API maps to responses
 * (404 for an unknown dataset, 400 for a bad filter). Neither helps by retrying.
 */

export const LatestErrorCode = {
  unknownDataset: 'UNKNOWN_DATASET',
  invalidStreamFilter: 'INVALID_STREAM_FILTER',
} as const;

export class UnknownDatasetError extends Error {
  override readonly name = 'UnknownDatasetError';
  readonly code = LatestErrorCode.unknownDataset;
  readonly retriable = false;
  readonly dataset: string;

  constructor(dataset: string) {
    super(`unknown dataset "${dataset}"`);
    this.dataset = dataset;
  }
}

/**
 * A filter names a column outside the dataset's stream key, or a window's stream does not
 * name exactly the stream key columns.
 */
export class InvalidStreamFilterError extends Error {
  override readonly name = 'InvalidStreamFilterError';
  readonly code = LatestErrorCode.invalidStreamFilter;
  readonly retriable = false;
  readonly dataset: string;

  constructor(dataset: string, detail: string, streamKey: readonly string[]) {
    super(
      `dataset "${dataset}": ${detail}` +
        (streamKey.length > 0 ? ` (stream key: ${streamKey.join(', ')})` : ' (the dataset is one stream, with no key)'),
    );
    this.dataset = dataset;
  }
}
