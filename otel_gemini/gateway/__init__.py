"""(Placeholder.)"""
