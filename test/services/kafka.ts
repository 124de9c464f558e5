// A real Apache Kafka 4.x broker for integration tests, fault tests and benchmarks:
// single-node KRaft (one JVM is broker and controller), jars from Maven Central
// (cached, see service-cache.ts), config, data and log in a temp dir, free loopback
// ports. Nothing skips: a missing Java or an unreachable Maven Central is an error.
//
// Invariants:
// - restart() keeps the ports and the data dir: a broker restart loses nothing that
//   was acknowledged with acks=all (single node: the leader's log, flushed on SIGTERM).
// - The storage is formatted once (`--standalone`, which records the controller's
//   endpoint in the bootstrap snapshot), so the controller port never changes after it.
// - Optional listeners: SASL_SSL with SCRAM-SHA-256/512 users created at format time
//   (`--add-scram`) and unsecured OAUTHBEARER (the broker's default validator accepts
//   unsigned JWTs: fine for a test of the client side only), on a PEM key and
//   certificate made with openssl.
// - A failed start, or a stop after a failed test, keeps the broker log and its config
//   in test-logs (service-logs.ts); `keepDir` keeps the whole working dir.
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { freePort } from '../support/free-port.ts';
import { managedProcess, serviceControl, serviceDir, type ManagedProcess, type ServiceControl } from './managed-process.ts';
import { mavenClasspath, runCommand, type MavenArtifact } from './service-cache.ts';
import { startFailure } from './service-logs.ts';

/** The newest Kafka 4.x whose artifacts are all on Maven Central (4.4.0 lacks kafka-tools-api there). */
export const KAFKA_VERSION = '4.3.1';

const KAFKA_ARTIFACTS: MavenArtifact[] = [
  { groupId: 'org.apache.kafka', artifactId: 'kafka_2.13', version: KAFKA_VERSION },
  // Kafka's pom brings slf4j-api 1.7; a 2.x API with the log4j2 binding gives quiet,
  // configurable logs instead of "no SLF4J providers" noise.
  { groupId: 'org.slf4j', artifactId: 'slf4j-api', version: '2.0.17' },
  { groupId: 'org.apache.logging.log4j', artifactId: 'log4j-slf4j2-impl', version: '2.24.3' },
  { groupId: 'org.apache.logging.log4j', artifactId: 'log4j-core', version: '2.24.3' },
];

/** Downloads (once, cached) the broker's class path. For the services provisioner. */
export function provisionKafka(): Promise<string> {
  return mavenClasspath('kafka', KAFKA_ARTIFACTS);
}

export interface KafkaScramUser {
  name: string;
  password: string;
  mechanism?: 'SCRAM-SHA-256' | 'SCRAM-SHA-512';
}

export interface KafkaOptions {
  /** Also open a SASL_SSL listener (SCRAM + OAUTHBEARER) with these SCRAM users. */
  secure?: { users: KafkaScramUser[] };
  /** Default partitions of auto-created topics (default 1). */
  defaultPartitions?: number;
  /** JVM heap (default 768m: the machines have 2 cores and a few GB). */
  heap?: string;
  startTimeoutMs?: number;
  /** Working directory (config, data, log); by default a new temp dir. */
  dir?: string;
  /** Keep the working directory after stop() (default: remove it if we created it). */
  keepDir?: boolean;
}

export interface KafkaSecureListener {
  /** host:port of the SASL_SSL listener. */
  broker: string;
  /** PEM of the CA that signed the broker certificate. */
  caFile: string;
  caPem: string;
}

export interface KafkaBroker extends ServiceControl {
  /** host:port list of the PLAINTEXT listener. */
  readonly brokers: string[];
  readonly secure: KafkaSecureListener | null;
  readonly dir: string;
  readonly logFile: string;
  createTopic(name: string, partitions?: number): Promise<void>;
  /** A kafkajs admin client on the PLAINTEXT listener (the caller disconnects it). */
  admin(): Promise<Admin>;
}

const LOG4J2 = `
status = error
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
logger.kafka.name = kafka.Kafka
logger.kafka.level = INFO
`;

function serverProperties(o: { plain: number; controller: number; secure: number | null; dir: string; partitions: number }): string {
  const listeners = [`PLAINTEXT://127.0.0.1:${o.plain}`, `CONTROLLER://127.0.0.1:${o.controller}`];
  const advertised = [`PLAINTEXT://127.0.0.1:${o.plain}`];
  const protocols = ['PLAINTEXT:PLAINTEXT', 'CONTROLLER:PLAINTEXT'];
  if (o.secure !== null) {
    listeners.push(`SASL_SSL://127.0.0.1:${o.secure}`);
    advertised.push(`SASL_SSL://127.0.0.1:${o.secure}`);
    protocols.push('SASL_SSL:SASL_SSL');
  }
  const lines = [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.bootstrap.servers=127.0.0.1:${o.controller}`,
    `listeners=${listeners.join(',')}`,
    `advertised.listeners=${advertised.join(',')}`,
    `listener.security.protocol.map=${protocols.join(',')}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    `log.dirs=${join(o.dir, 'data')}`,
    `num.partitions=${o.partitions}`,
    'offsets.topic.replication.factor=1',
    // Fewer internal partitions: a faster first start on a small machine.
    'offsets.topic.num.partitions=4',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'transaction.state.log.num.partitions=4',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    'share.coordinator.state.topic.num.partitions=4',
    // Tests form groups and expect them at once, not after the 3 s production default.
    'group.initial.rebalance.delay.ms=0',
    'group.consumer.session.timeout.ms=45000',
    'auto.create.topics.enable=true',
    'num.network.threads=2',
    'num.io.threads=4',
    'log.cleaner.enable=true',
    'log.cleaner.dedupe.buffer.size=8388608',
  ];
  if (o.secure !== null) {
    const l = 'listener.name.sasl_ssl';
    lines.push(
      'sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER',
      `${l}.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`,
      `${l}.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`,
      `${l}.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="broker";`,
      'ssl.keystore.type=PEM',
      `ssl.keystore.location=${join(o.dir, 'tls', 'server.pem')}`,
      'ssl.truststore.type=PEM',
      `ssl.truststore.location=${join(o.dir, 'tls', 'ca.crt')}`,
      'ssl.client.auth=none',
    );
  }
  return lines.join('\n') + '\n';
}

/** A CA and a broker certificate for 127.0.0.1, made with openssl (PKCS#8 key, as Kafka's PEM store wants). */
function makeCertificates(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  };
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=lakeside kafka test CA');
  openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '2', '-out', 'server.crt', '-extfile', 'server.ext');
  openssl('pkcs8', '-topk8', '-nocrypt', '-in', 'server.key', '-out', 'server.pk8');
  writeFileSync(join(dir, 'server.pem'), readFileSync(join(dir, 'server.pk8'), 'utf8') + readFileSync(join(dir, 'server.crt'), 'utf8'));
}

async function metadataAnswers(broker: string): Promise<boolean> {
  const kafka = new Kafka({ clientId: 'ready-probe', brokers: [broker], logLevel: logLevel.NOTHING, retry: { retries: 0 }, connectionTimeout: 1000 });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return cluster.brokers.length > 0 && cluster.controller !== null && cluster.controller >= 0;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** Every partition of every topic has its leader back and answers ListOffsets (after a restart). */
async function partitionsServed(broker: string): Promise<boolean> {
  const kafka = new Kafka({ clientId: 'ready-probe', brokers: [broker], logLevel: logLevel.NOTHING, retry: { retries: 0 }, connectionTimeout: 1000 });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const topics = (await admin.listTopics()).filter((t) => !t.startsWith('__'));
    if (topics.length === 0) return true;
    const meta = await admin.fetchTopicMetadata({ topics });
    if (!meta.topics.every((t) => t.partitions.every((p) => p.leader >= 0))) return false;
    for (const topic of topics) await admin.fetchTopicOffsets(topic);
    return true;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

export async function startKafka(opts: KafkaOptions = {}): Promise<KafkaBroker> {
  const classpath = await provisionKafka();
  const { dir, remove } = await serviceDir('lakeside-kafka-', opts);
  const logFile = join(dir, 'kafka.log');
  const propsFile = join(dir, 'server.properties');
  const log4jFile = join(dir, 'log4j2.properties');
  const logs = [logFile, propsFile, log4jFile];
  writeFileSync(log4jFile, LOG4J2);
  const secureUsers = opts.secure?.users ?? null;
  if (secureUsers) makeCertificates(join(dir, 'tls'));
  const javaArgs = (mainClass: string, args: string[], heap: string): string[] => [
    `-Xmx${heap}`,
    '-Xss1m',
    '-XX:+UseG1GC',
    '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=${log4jFile}`,
    '-cp',
    classpath,
    mainClass,
    ...args,
  ];

  let plain = 0;
  let controller = 0;
  let secure: number | null = null;
  let proc: ManagedProcess | null = null;

  const launch = async (): Promise<void> => {
    proc = managedProcess({
      name: 'kafka',
      command: 'java',
      args: javaArgs('kafka.Kafka', [propsFile], opts.heap ?? '768m'),
      logFile,
      ready: () => metadataAnswers(`127.0.0.1:${plain}`),
      startTimeoutMs: opts.startTimeoutMs ?? 120_000,
      stopTimeoutMs: 30_000,
    });
    await proc.start();
  };

  // The ports are chosen free but released before Kafka binds them; on a clash the
  // storage is formatted afresh (the controller endpoint is in its bootstrap snapshot).
  for (let attempt = 0; ; attempt++) {
    plain = await freePort();
    controller = await freePort();
    secure = secureUsers ? await freePort() : null;
    const ports = secure === null ? [plain, controller] : [plain, controller, secure];
    if (new Set(ports).size < ports.length) continue; // the kernel handed out a port twice (each was released first)
    rmSync(join(dir, 'data'), { recursive: true, force: true });
    writeFileSync(propsFile, serverProperties({ plain, controller, secure, dir, partitions: opts.defaultPartitions ?? 1 }));
    const scram = (secureUsers ?? []).flatMap((u) => ['--add-scram', `${u.mechanism ?? 'SCRAM-SHA-256'}=[name=${u.name},password=${u.password}]`]);
    try {
      await runCommand('java', javaArgs('kafka.tools.StorageTool', ['format', '--standalone', '-t', randomUUID(), '-c', propsFile, ...scram], '256m'), {
        what: 'kafka storage format',
        timeoutMs: 120_000,
      });
      await launch();
      break;
    } catch (error) {
      const text = `${(error as Error).message}`;
      if (attempt < 3 && /Address already in use|BindException/i.test(text)) continue;
      throw await startFailure('kafka', error, logs, remove);
    }
  }

  const current = (): ManagedProcess => proc!;
  const brokers = [`127.0.0.1:${plain}`];
  const admin = async (): Promise<Admin> => {
    const kafka = new Kafka({ clientId: 'test-admin', brokers, logLevel: logLevel.NOTHING });
    const a = kafka.admin();
    await a.connect();
    return a;
  };
  const control = serviceControl('kafka', {
    current,
    remove,
    logs,
    relaunch: async () => {
      await launch();
      // Metadata answers before the partitions are led again: wait for those too.
      const deadline = Date.now() + 60_000;
      while (!(await partitionsServed(brokers[0]!))) {
        if (Date.now() > deadline) throw new Error(`kafka: partitions not served within 60 s after a restart:\n${current().logTail()}`);
        await new Promise((res) => setTimeout(res, 200));
      }
    },
  });
  return {
    brokers,
    secure:
      secure === null
        ? null
        : { broker: `127.0.0.1:${secure}`, caFile: join(dir, 'tls', 'ca.crt'), caPem: readFileSync(join(dir, 'tls', 'ca.crt'), 'utf8') },
    dir,
    logFile,
    get pid() {
      return control.pid;
    },
    admin,
    async createTopic(name, partitions = 1) {
      const a = await admin();
      try {
        await a.createTopics({ topics: [{ topic: name, numPartitions: partitions, replicationFactor: 1 }], waitForLeaders: false });
        // kafkajs' own waitForLeaders gives up on UNKNOWN_TOPIC_OR_PARTITION while the
        // broker's metadata catches up; poll until every partition has its leader.
        for (let i = 0; i < 150; i++) {
          const meta = await a.fetchTopicMetadata({ topics: [name] }).catch(() => null);
          const parts = meta?.topics[0]?.partitions ?? [];
          if (parts.length === partitions && parts.every((p) => p.leader >= 0)) return;
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error(`kafka: topic ${name} has no leaders for its ${partitions} partitions`);
      } finally {
        await a.disconnect();
      }
    },
    restart: control.restart,
    kill: control.kill,
    stop: control.stop,
    get keptLogs() {
      return control.keptLogs;
    },
    logTail: control.logTail,
  };
}
