/** `lakeside run --config FILE`: the daemon in the foreground until SIGTERM/SIGINT, then a draining stop and exit 0. */
import type { Command } from 'commander';
import { ConfigError } from '../../config/errors.ts';
import { loadConfigFile } from '../../config/loader.ts';
import { Daemon } from '../daemon.ts';
import { createLogger, ErrorCode } from '../log.ts';

export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description('run the agent until SIGTERM or SIGINT')
    .requiredOption('-c, --config <file>', 'the YAML config file')
    .action(async (options: { config: string }) => {
      const bootLogger = createLogger('info');
      let loaded;
      try {
        loaded = await loadConfigFile(options.config);
      } catch (error) {
        if (error instanceof ConfigError) {
          bootLogger.fatal({ code: ErrorCode.configInvalid, issues: error.issues }, error.message);
          process.stderr.write(`${error.message}\n`);
          process.exitCode = 2;
          return;
        }
        throw error;
      }
      const logger = createLogger(loaded.config.log_level);
      for (const warning of loaded.warnings) logger.warn({ code: ErrorCode.configInvalid }, warning);
      const daemon = new Daemon(loaded, logger);
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'stopping: draining sources, landing log and seals');
        daemon.stop().then(
          () => logger.flush(() => process.exit(0)),
          (error: Error) => {
            logger.error({ err: error.message }, 'stop failed');
            logger.flush(() => process.exit(1));
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      // Started by bin/lakeside.js with an IPC channel: if that wrapper dies, stop too.
      if (process.send) process.on('disconnect', () => stop('wrapper exited'));
      try {
        await daemon.start();
      } catch (error) {
        logger.fatal({ code: (error as { code?: string }).code ?? 'START_FAILED', err: (error as Error).message }, 'lakeside could not start');
        logger.flush(() => process.exit(1));
      }
    });
}
