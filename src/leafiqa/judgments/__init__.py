"""judgments"""
