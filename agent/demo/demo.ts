/**
 * `lakeside demo` without the command line: everything on one machine, no outside
 * service. Owns the demo directory layout (`<dir>/lakeside.yaml`, `state/`, `drop/`,
 * `warm/`), the embedded broker, the agent (the real `Daemon`, in-process, on
 * config/examples/demo.yaml with the broker's URL filled in) and the simulated plant.
 *
 * Lifecycle: the constructor does no I/O. `start()` goes downstream first: broker →
 * daemon → plant, and if a step fails stops what already started before rethrowing.
 * `stop()` goes upstream first: plant → daemon (drains and seals what landed) → broker;
 * safe to call twice.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { parseConfigText, type LoadedConfig } from '../../config/loader.ts';
import { Daemon } from '../daemon.ts';
import { onceStop, type Component } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { EmbeddedBroker } from './embedded-broker.ts';
import { SimulatedPlant } from './simulated-plant.ts';

export const DEMO_CONFIG_TEMPLATE = new URL('../../config/examples/demo.yaml', import.meta.url);

export interface DemoOptions {
  /** The demo directory (created if missing); relative to the working directory. */
  dir: string;
  logger: Logger;
  /** Embedded broker port on 127.0.0.1; default 0 (a free one). */
  mqttPort?: number;
  /** HTTP API port on 127.0.0.1; default 7070, 0 = a free one. */
  apiPort?: number;
  /** Simulated plant seed; default 42. */
  seed?: number;
  /** log_level written into the config; default warn. */
  logLevel?: string;
}

export interface DemoLayout {
  dir: string;
  configPath: string;
  stateDir: string;
  dropDir: string;
  /** Stands in for the warm bucket (used once tiering is configured). */
  warmDir: string;
}

export function demoLayout(dir: string): DemoLayout {
  const abs = resolve(dir);
  return { dir: abs, configPath: join(abs, 'lakeside.yaml'), stateDir: join(abs, 'state'), dropDir: join(abs, 'drop'), warmDir: join(abs, 'warm') };
}

/** The demo config text: the template with the broker URL and log level filled in (comments kept). */
export function demoConfigText(template: string, brokerUrl: string, logLevel: string, apiPort = 7070): string {
  const doc = parseDocument(template);
  doc.setIn(['sources', 'mqtt', 0, 'url'], brokerUrl);
  doc.set('log_level', logLevel);
  doc.setIn(['api', 'listen_port'], apiPort);
  return doc.toString();
}

export class Demo implements Component {
  readonly name = 'demo';
  readonly layout: DemoLayout;
  readonly broker: EmbeddedBroker;
  private readonly options: DemoOptions;
  private daemonInstance: Daemon | null = null;
  private plantInstance: SimulatedPlant | null = null;
  private loadedConfig: LoadedConfig | null = null;

  constructor(options: DemoOptions) {
    this.options = options;
    this.layout = demoLayout(options.dir);
    this.broker = new EmbeddedBroker({ port: options.mqttPort ?? 0 });
  }

  get daemon(): Daemon | null {
    return this.daemonInstance;
  }

  get plant(): SimulatedPlant | null {
    return this.plantInstance;
  }

  get config(): LoadedConfig | null {
    return this.loadedConfig;
  }

  async start(): Promise<void> {
    const { layout, options } = this;
    for (const dir of [layout.dir, layout.stateDir, layout.dropDir, layout.warmDir]) await mkdir(dir, { recursive: true });
    try {
      await this.broker.start();
      const text = demoConfigText(await readFile(DEMO_CONFIG_TEMPLATE, 'utf8'), this.broker.url, options.logLevel ?? 'warn', options.apiPort ?? 7070);
      await writeFile(layout.configPath, text);
      this.loadedConfig = parseConfigText(text, layout.configPath);
      for (const warning of this.loadedConfig.warnings) options.logger.warn({ code: 'CONFIG_INVALID' }, warning);
      this.daemonInstance = new Daemon(this.loadedConfig, options.logger);
      await this.daemonInstance.start();
      this.plantInstance = new SimulatedPlant({ brokerUrl: this.broker.url, dropDir: layout.dropDir, plant: this.loadedConfig.config.plant, seed: options.seed ?? 42, logger: options.logger });
      await this.plantInstance.start();
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  readonly stop = onceStop(async () => {
    const steps: [string, (() => Promise<void>) | undefined][] = [
      ['simulated plant', this.plantInstance?.stop],
      ['agent', this.daemonInstance?.stop],
      ['embedded broker', this.broker.stop],
    ];
    for (const [what, stop] of steps) {
      try {
        await stop?.();
      } catch (error) {
        this.options.logger.error({ component: what, err: (error as Error).message }, 'demo: stop failed');
      }
    }
  });
}
