global using Microsoft.Extensions.DependencyInjection;
global using Microsoft.Extensions.Options;
global using TorchSharp;
global using static TorchSharp.torch;
