/**
 * `lakeside demo [--dir DIR] [--duration SECONDS] [--port N]`: the embedded broker, the
 * agent and a simulated plant on this machine (agent/demo/demo.ts) until SIGINT/SIGTERM
 * or the duration, then an ordered stop (plant → agent → broker) and exit 0.
 *
 * Output: the guidance (where the state is, what runs, the operator questions as SQL)
 * goes to stderr, so stdout stays pino JSON lines (level warn unless --log-level).
 * Exit codes: 0 stopped cleanly, 1 could not start or stop, 2 bad option.
 */
import type { Command } from 'commander';
import { Demo, type DemoLayout } from '../demo/demo.ts';
import { DEMO_LINES } from '../demo/plant-model.ts';
import { OPERATOR_QUESTIONS } from '../demo/questions.ts';
import { FRAME_HEIGHT, FRAME_WIDTH } from '../demo/frames.ts';
import { createLogger } from '../log.ts';

interface DemoCommandOptions {
  dir: string;
  duration?: string;
  port?: string;
  apiPort: string;
  seed: string;
  logLevel: string;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run an embedded MQTT broker, the agent and a simulated plant on this machine')
    .option('-d, --dir <dir>', 'demo directory: config, state, camera drop folder, warm stand-in', './lakeside-demo')
    .option('--duration <seconds>', 'stop after this many seconds (default: run until Ctrl-C)')
    .option('-p, --port <n>', 'embedded MQTT broker port on 127.0.0.1 (default: a free one)')
    .option('--api-port <n>', 'HTTP API port on 127.0.0.1 (0: a free one)', '7070')
    .option('--seed <n>', 'seed of the simulated plant', '42')
    .option('--log-level <level>', `agent log level on stdout (${LOG_LEVELS.join(', ')})`, 'warn')
    .action(async (options: DemoCommandOptions) => {
      const duration = options.duration === undefined ? undefined : Number(options.duration);
      const port = options.port === undefined ? 0 : Number(options.port);
      const seed = Number(options.seed);
      const apiPort = Number(options.apiPort);
      const problem =
        duration !== undefined && !(Number.isFinite(duration) && duration > 0) ? '--duration must be a positive number of seconds'
        : !(Number.isInteger(port) && port >= 0 && port <= 65535) ? '--port must be a port number (0-65535)'
        : !(Number.isInteger(apiPort) && apiPort >= 0 && apiPort <= 65535) ? '--api-port must be a port number (0-65535)'
        : !Number.isInteger(seed) ? '--seed must be an integer'
        : !LOG_LEVELS.includes(options.logLevel) ? `--log-level must be one of ${LOG_LEVELS.join(', ')}`
        : null;
      if (problem) {
        process.stderr.write(`lakeside demo: ${problem}\n`);
        process.exitCode = 2;
        return;
      }

      const logger = createLogger(options.logLevel);
      const demo = new Demo({ dir: options.dir, logger, mqttPort: port, apiPort, seed, logLevel: options.logLevel });
      let stopping = false;
      const stop = (why: string): void => {
        if (stopping) return;
        stopping = true;
        process.stderr.write(`\nlakeside demo: stopping (${why}): plant, then agent (drains and seals), then broker…\n`);
        demo.stop().then(
          () => {
            const stats = demo.plant?.stats;
            if (stats) process.stderr.write(`lakeside demo: stopped; published ${stats.readings} readings and ${stats.inspections} inspections, wrote ${stats.frames} camera frames. State kept in ${demo.layout.stateDir}\n`);
            logger.flush(() => process.exit(0));
          },
          (error: Error) => {
            logger.error({ err: error.message }, 'demo stop failed');
            logger.flush(() => process.exit(1));
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      // Started by bin/lakeside.js with an IPC channel: if that wrapper dies, stop too.
      if (process.send) process.on('disconnect', () => stop('wrapper exited'));

      try {
        await demo.start();
      } catch (error) {
        const code = (error as { code?: string }).code ?? 'START_FAILED';
        logger.fatal({ code, err: (error as Error).message }, 'lakeside demo could not start');
        process.stderr.write(`lakeside demo could not start: ${(error as Error).message} (${code})\n`);
        logger.flush(() => process.exit(1));
        return;
      }
      if (stopping) return;
      process.stderr.write(banner(demo.layout, demo.broker.url, demo.daemon?.reads.url ?? '(not listening)', duration));
      if (duration !== undefined) setTimeout(() => stop(`--duration ${duration}s elapsed`), duration * 1000);
    });
}

function banner(layout: DemoLayout, brokerUrl: string, apiUrl: string, duration: number | undefined): string {
  const readingsPerSecond = DEMO_LINES.reduce((sum, line) => sum + line.sensors.reduce((s, sensor) => s + sensor.hz, 0), 0);
  const inspectionsPerSecond = DEMO_LINES.reduce((sum, line) => sum + line.inspectionHz, 0);
  const lines = DEMO_LINES.map((line) => `    ${line.name.padEnd(11)} ${line.sensors.map((s) => `${s.name} ${s.hz} Hz`).join(', ')}; camera ${line.camera}`);
  const urlOption = apiUrl === 'http://127.0.0.1:7070' ? '' : ` --url ${apiUrl}`;
  const questions = OPERATOR_QUESTIONS.map((q, i) => `  ${i + 1}. ${q.question}\n\n     lakeside query${urlOption} "${q.sql.replace(/\s*\n\s*/g, ' ').replaceAll('"', '\\"')}"\n`);
  return [
    '',
    'lakeside demo: an MQTT broker, the agent and a simulated plant, all on this machine.',
    '',
    `  config       ${layout.configPath}`,
    `  state        ${layout.stateDir}   (landing log landing.db, hot-tier Parquet, blobs)`,
    `  camera drop  ${layout.dropDir}   (frames are taken from here into the blob store)`,
    `  warm bucket  ${layout.warmDir}   (a local stand-in; unused until tiering is configured)`,
    `  MQTT broker  ${brokerUrl}   (embedded aedes, MQTT 3.1.1; publish to plant/demo/line/<line>/sensor/<sensor>)`,
    `  HTTP API     ${apiUrl}   (POST /v1/query, GET /v1/datasets, /v1/latest, /v1/window, /v1/blobs/<sha256>)`,
    '',
    `Simulated plant: ${readingsPerSecond} sensor readings/s, ${inspectionsPerSecond} inspections/s, ${inspectionsPerSecond} camera frames/s (${FRAME_WIDTH}x${FRAME_HEIGHT} PNG)`,
    ...lines,
    '',
    'Datasets: sensor_readings, inspections, camera_frames. Ask from another terminal (rows are',
    'queryable a few seconds after they arrive; `lakeside datasets`, `lakeside tail sensor_readings:line=coating_3,sensor=humidity`):',
    '',
    ...questions,
    duration !== undefined ? `Running for ${duration} s (or until Ctrl-C).` : 'Running until Ctrl-C.',
    '',
  ].join('\n');
}
