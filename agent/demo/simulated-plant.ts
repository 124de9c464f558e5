/**
 * The simulated plant: publishes sensor readings and inspection results to an MQTT
 * broker and drops one camera frame (a real PNG) per inspection into a folder.
 *
 * - Readings: `plant/<plant>/line/<line>/sensor/<sensor>`, `{"ts": epoch_ms, "value", "unit"}`,
 *   each sensor at its own rate (plant-model.ts); `ts` is the scheduled instant, so it
 *   strictly increases per stream (the dedupe key line + sensor + ts never collides).
 * - Inspections: `plant/<plant>/line/<line>/inspection`, `{"ts", "inspection_id",
 *   "product_id", "passed", "defects": [{"label", "confidence"}], "review", "model"}`.
 * - Frames: `<drop>/<line>/<camera>/<inspection_id>.png`, written under a dot-name that
 *   the folder source ignores, then renamed, so the source never sees a partial file.
 *
 * Lifecycle: the constructor does no I/O; `start()` resolves once connected to the
 * broker and the drop folders exist; `stop()` stops the timer, waits for in-flight
 * publishes and frame writes, disconnects, and is safe to call twice.
 */
import { mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { onceStop, type Component } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { renderFrame } from './frames.ts';
import { DEMO_LINES, inspect, SignalState, type LineSpec, type SensorSpec } from './plant-model.ts';
import { Prng } from './prng.ts';

export interface SimulatedPlantOptions {
  brokerUrl: string;
  /** Camera drop folder (the folder source's `path`). */
  dropDir: string;
  /** Topic prefix `plant/<plant>/…`; default `demo`. */
  plant?: string;
  lines?: readonly LineSpec[];
  /** Default 42. */
  seed?: number;
  logger?: Logger;
  /** Scheduler tick; default 50 ms. */
  tickMs?: number;
}

export interface SimulatedPlantStats {
  readings: number;
  inspections: number;
  frames: number;
  publishErrors: number;
  frameErrors: number;
}

interface SensorRun {
  line: LineSpec;
  spec: SensorSpec;
  signal: SignalState;
  periodMs: number;
  nextAt: number;
  topic: string;
}

interface LineRun {
  spec: LineSpec;
  rng: Prng;
  periodMs: number;
  nextAt: number;
  seq: number;
  topic: string;
  cameraDir: string;
  humidity: number | undefined;
}

/** Further behind than this, a schedule skips ahead instead of bursting to catch up. */
const MAX_CATCH_UP_MS = 5_000;

export class SimulatedPlant implements Component {
  readonly name = 'simulated_plant';
  readonly stats: SimulatedPlantStats = { readings: 0, inspections: 0, frames: 0, publishErrors: 0, frameErrors: 0 };
  private readonly options: SimulatedPlantOptions;
  private readonly lines: readonly LineSpec[];
  private readonly prefix: string;
  private client: MqttClient | null = null;
  private timer: NodeJS.Timeout | null = null;
  private sensors: SensorRun[] = [];
  private lineRuns: LineRun[] = [];
  private readonly pending = new Set<Promise<void>>();

  constructor(options: SimulatedPlantOptions) {
    this.options = options;
    this.lines = options.lines ?? DEMO_LINES;
    this.prefix = `plant/${options.plant ?? 'demo'}/line`;
  }

  async start(): Promise<void> {
    const rng = new Prng(this.options.seed ?? 42);
    const now = Date.now();
    for (const line of this.lines) {
      const lineRng = rng.fork();
      const cameraDir = join(this.options.dropDir, line.name, line.camera);
      await mkdir(cameraDir, { recursive: true });
      const periodMs = Math.round(1000 / line.inspectionHz);
      this.lineRuns.push({ spec: line, rng: lineRng.fork(), periodMs, nextAt: now + periodMs, seq: 0, topic: `${this.prefix}/${line.name}/inspection`, cameraDir, humidity: undefined });
      for (const spec of line.sensors) {
        const sensorPeriod = Math.round(1000 / spec.hz);
        this.sensors.push({ line, spec, signal: new SignalState(spec, lineRng.fork()), periodMs: sensorPeriod, nextAt: Math.ceil(now / sensorPeriod) * sensorPeriod, topic: `${this.prefix}/${line.name}/sensor/${spec.name}` });
      }
    }
    this.client = await mqtt.connectAsync(this.options.brokerUrl, {
      protocolVersion: 4,
      clientId: `lakeside-demo-plant-${process.pid}`,
      clean: true,
      reconnectPeriod: 1000,
    });
    this.timer = setInterval(() => this.tick(), this.options.tickMs ?? 50);
  }

  readonly stop = onceStop(async () => {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    await this.client?.endAsync();
  });

  private tick(): void {
    const now = Date.now();
    for (const sensor of this.sensors) {
      if (now - sensor.nextAt > MAX_CATCH_UP_MS) sensor.nextAt = Math.ceil(now / sensor.periodMs) * sensor.periodMs;
      while (sensor.nextAt <= now) {
        const ts = sensor.nextAt;
        sensor.nextAt += sensor.periodMs;
        const value = sensor.signal.next(ts / 1000, sensor.periodMs / 1000);
        if (sensor.spec.name === 'humidity') this.lineRun(sensor.line).humidity = value;
        this.publish(sensor.topic, { ts, value, unit: sensor.spec.unit });
        this.stats.readings++;
      }
    }
    for (const line of this.lineRuns) {
      if (now - line.nextAt > MAX_CATCH_UP_MS) line.nextAt = now;
      while (line.nextAt <= now) {
        const ts = line.nextAt;
        line.nextAt += line.periodMs;
        this.inspection(line, ts);
      }
    }
  }

  private lineRun(spec: LineSpec): LineRun {
    return this.lineRuns.find((l) => l.spec === spec)!;
  }

  private inspection(line: LineRun, ts: number): void {
    const outcome = inspect(line.spec, line.humidity, line.rng);
    const inspectionId = `${line.spec.name}-${ts}`;
    line.seq++;
    this.publish(line.topic, {
      ts,
      inspection_id: inspectionId,
      product_id: `P-${line.spec.name.replace(/[^0-9]/g, '')}${String(line.seq).padStart(6, '0')}`,
      passed: outcome.passed,
      defects: outcome.defects,
      review: outcome.review,
      model: 'edge-defects-3',
    });
    this.stats.inspections++;
    const frameDefects = outcome.defects.map((d) => ({ label: d.label, strength: outcome.review === 'false_positive' ? 0.25 : 1 }));
    const png = renderFrame(line.spec.kind, frameDefects, line.rng);
    this.track(this.writeFrame(line.cameraDir, `${inspectionId}.png`, png));
  }

  private async writeFrame(dir: string, file: string, png: Buffer): Promise<void> {
    const temp = join(dir, `.${file}.tmp`);
    try {
      await writeFile(temp, png);
      await rename(temp, join(dir, file));
      this.stats.frames++;
    } catch (error) {
      this.stats.frameErrors++;
      this.options.logger?.warn({ err: (error as Error).message, file }, 'demo: could not write a camera frame');
      await unlink(temp).catch(() => undefined);
    }
  }

  private publish(topic: string, payload: object): void {
    const client = this.client;
    if (!client) return;
    this.track(
      new Promise<void>((resolve) => {
        client.publish(topic, JSON.stringify(payload), { qos: 1 }, (error) => {
          if (error) {
            this.stats.publishErrors++;
            this.options.logger?.warn({ err: error.message, topic }, 'demo: publish failed');
          }
          resolve();
        });
      }),
    );
  }

  private track(promise: Promise<void>): void {
    this.pending.add(promise);
    void promise.finally(() => this.pending.delete(promise));
  }
}
