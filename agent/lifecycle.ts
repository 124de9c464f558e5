/**
 * The one lifecycle every component follows (checked by a conformance test):
 * - the constructor does no I/O;
 * - `start()` resolves when the component is ready;
 * - `stop()` stops intake, drains, flushes, and is safe to call twice.
 * The daemon starts downstream before upstream and stops in the reverse order.
 */
export interface Component {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Makes `stop()` idempotent: a second call returns the first call's promise. */
export function onceStop(stop: () => Promise<void>): () => Promise<void> {
  let stopping: Promise<void> | null = null;
  return () => (stopping ??= stop());
}
