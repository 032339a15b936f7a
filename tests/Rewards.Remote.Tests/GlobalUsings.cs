global using Xunit;
global using NextFlowRL.Rewards;
