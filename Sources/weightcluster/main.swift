import WeightClusterCLI

WeightClusterCommand.main()
