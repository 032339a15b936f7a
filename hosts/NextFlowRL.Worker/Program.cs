using System.CommandLine;
using NextFlowRL.Worker;

NextFlowRL.Torch.Memory.NativeHeap.Configure(); // before the first tensor
NextFlowRL.Torch.Determinism.NativeNumerics.Configure(); // MKL_CBWR: the trainer's bits in this process too
return await WorkerProgram.Create().Parse(args).InvokeAsync();
