import WeightClusterCLI

WeightClusterCommand.runAsMain()
