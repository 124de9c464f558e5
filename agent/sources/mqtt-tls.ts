/** The mqtt.js TLS options of a config `tls` section: the CA, certificate and key files read now. */
import { readFile } from 'node:fs/promises';
import type { IClientOptions } from 'mqtt';

export interface MqttTlsConfig {
  ca_file?: string | undefined;
  cert_file?: string | undefined;
  key_file?: string | undefined;
  reject_unauthorized: boolean;
}

export async function mqttTlsOptions(tls: MqttTlsConfig | undefined): Promise<IClientOptions> {
  if (!tls) return {};
  const [ca, cert, key] = await Promise.all([tls.ca_file, tls.cert_file, tls.key_file].map((file) => (file ? readFile(file) : undefined)));
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}), rejectUnauthorized: tls.reject_unauthorized };
}
