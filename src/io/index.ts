// Reading and writing tensors: safetensors files (and, later, Hugging Face folders and checkpoints).
export {
  SafetensorsFile, loadSafetensors, serializeSafetensors, writeSafetensors, MAX_HEADER_SIZE,
} from './safetensors.js';
export type { SafetensorsDType, TensorInfo, HostTensor, TensorToWrite } from './safetensors.js';
