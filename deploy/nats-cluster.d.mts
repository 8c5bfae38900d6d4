/** Types of nats-cluster.mjs (plain ESM so the services script runs before any build). */
export interface ClusterNodeOptions {
  name: string;
  host: string;
  clientPort: number;
  routePort: number;
  httpPort: number;
  storeDir: string;
  routes: number[];
  clusterName?: string;
}
export function nodeConfig(o: ClusterNodeOptions): string;
export class ClusterNode implements ClusterNodeOptions {
  name: string;
  host: string;
  clientPort: number;
  routePort: number;
  httpPort: number;
  storeDir: string;
  routes: number[];
  log: string;
  pid?: number;
  readonly url: string;
  readonly running: boolean;
  start(): Promise<void>;
  kill(): Promise<void>;
  signal(sig: NodeJS.Signals): void;
}
export interface NatsCluster {
  nodes: ClusterNode[];
  /** Every node, comma-separated: a NATS_URL. */
  url: string;
  stop(): Promise<void[]>;
  waitReady(timeoutMs?: number): Promise<string>;
}
export function startNatsCluster(o: {
  size?: number;
  host?: string;
  basePort?: number;
  routeBasePort?: number;
  httpBasePort?: number;
  /** One port per node of each kind, instead of consecutive ports from the bases. */
  ports?: { client: number[]; route: number[]; http: number[] };
  dir: string;
  bin?: string;
  detached?: boolean;
  clusterName?: string;
}): Promise<NatsCluster>;
export function waitClusterReady(nodes: ClusterNode[], timeoutMs?: number): Promise<string>;
