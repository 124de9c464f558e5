/**
 * kafkajs client settings from a Kafka source's config: brokers, TLS (CA, client
 * certificate), SASL SCRAM-SHA-256/512 or OAUTHBEARER (a `${file:…}` token re-read at
 * each authentication), retries that never give up
 * (a broker outage is waited out, never a crash), and kafkajs' own log lines routed
 * into ours at warn level and above.
 */
import { readFile } from 'node:fs/promises';
import { logLevel, type KafkaConfig, type LogEntry, type SASLOptions } from 'kafkajs';
import type { KafkaSourceConfig } from '../../config/schema.ts';
import { readSecretFile, secretFileOf } from '../../config/secrets.ts';
import { ErrorCode, type Logger } from '../log.ts';

function logCreator(logger: Logger): KafkaConfig['logCreator'] {
  return () =>
    ({ level, log }: LogEntry) => {
      const { message, timestamp: _timestamp, logger: _name, ...rest } = log as { message: string; timestamp: string; logger: string } & Record<string, unknown>;
      // kafkajs logs retriable protocol errors (rebalances, leader moves) at ERROR while it recovers by itself.
      const fields = { code: ErrorCode.kafkaConnect, kafkajs: rest };
      if (level === logLevel.ERROR || level === logLevel.WARN) logger.warn(fields, `kafka: ${message}`);
      else logger.debug(fields, `kafka: ${message}`);
    };
}

/**
 * The OAUTHBEARER token for each (re)authentication. A `${file:…}` token is read again
 * every time, so whatever rotates the file (an OAuth client refreshing a short-lived
 * JWT) is picked up on the next connection without a restart; if the file cannot be
 * read then, the last token read is used and a warning names the file (never the token).
 */
function oauthBearerToken(sasl: NonNullable<KafkaSourceConfig['sasl']>, logger: Logger): () => Promise<{ value: string }> {
  let token = sasl.token!;
  const file = secretFileOf(sasl, 'token');
  if (file === undefined) return async () => ({ value: token });
  return async () => {
    try {
      token = readSecretFile(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
      logger.warn({ code: ErrorCode.kafkaConnect, file, err: code }, 'cannot read the OAUTHBEARER token file again; using the last token read');
    }
    return { value: token };
  };
}

function saslOptions(config: KafkaSourceConfig, logger: Logger): SASLOptions | undefined {
  const sasl = config.sasl;
  if (!sasl) return undefined;
  // The schema guarantees token for oauthbearer, username and password for SCRAM.
  if (sasl.mechanism === 'oauthbearer') return { mechanism: 'oauthbearer', oauthBearerProvider: oauthBearerToken(sasl, logger) };
  return { mechanism: sasl.mechanism, username: sasl.username!, password: sasl.password! };
}

export async function kafkaClientConfig(config: KafkaSourceConfig, logger: Logger): Promise<KafkaConfig> {
  const out: KafkaConfig = {
    clientId: config.client_id,
    brokers: config.brokers,
    connectionTimeout: Math.min(config.connect_timeout_ms, 10_000),
    logLevel: logLevel.WARN,
    logCreator: logCreator(logger),
    // Retries inside one operation; the consumer restarts itself after a failure (restartOnFailure).
    retry: { initialRetryTime: 300, maxRetryTime: 30_000, retries: 8 },
  };
  if (config.tls) {
    const tls = config.tls;
    out.ssl = {
      rejectUnauthorized: tls.reject_unauthorized,
      ...(tls.ca_file ? { ca: [await readFile(tls.ca_file, 'utf8')] } : {}),
      ...(tls.cert_file ? { cert: await readFile(tls.cert_file, 'utf8') } : {}),
      ...(tls.key_file ? { key: await readFile(tls.key_file, 'utf8') } : {}),
    };
  }
  const sasl = saslOptions(config, logger);
  if (sasl) out.sasl = sasl;
  return out;
}
