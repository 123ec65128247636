// The distributed layer's public surface.
export type { Communicator, ReduceOp } from './communicator.js';
export { mpiCommunicator } from './mpi.js';
export { shareRows } from './shares.js';
export { joinWorld, launchEnvironment, type LaunchEnvironment } from './world.js';
export { pairLossAcrossRanks, type PairLossParams } from './contrastive.js';
export { DataParallel, type DataParallelOptions, type DataParallelStats } from './ddp.js';
export { checkSameOnEveryRank, codeFingerprint } from './agree.js';
export { allGatherJSON } from './gather_json.js';
