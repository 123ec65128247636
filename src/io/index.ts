// Reading and writing tensors: safetensors files and Hugging Face checkpoint folders.
export {
  SafetensorsFile, loadSafetensors, serializeSafetensors, writeSafetensors, MAX_HEADER_SIZE,
} from './safetensors.js';
export type { SafetensorsDType, TensorInfo, HostTensor, TensorToWrite } from './safetensors.js';
export {
  ConfigReader, HFWeights, loadHFStateDict, loadPretrained, savePretrained, readHFConfig, writeHFConfig, saveHFWeights, saveHFFolder,
  labelFields, parseSize,
  CONFIG_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME,
} from './hf.js';
export type {
  HFConfig, WeightInfo, LoadHFOptions, SaveHFOptions, SaveDType, WeightToSave, CheckpointFormat, PretrainedLoad,
} from './hf.js';
